//! Customer mail (policy §7): what the workflow sends and what customers send us.
//!
//! - [`outbox`]: the transactional outbox. A projection enqueues the mails an event calls for
//!   in the same transaction as its checkpoint; [`dispatch`] sends them, retries with backoff,
//!   and records the follow-up (`Acknowledged`, `SurveySent`) with the mail's Message-ID.
//! - [`templates`]: the mails' text, Hungarian and English, editable without recompiling.
//! - [`transport`]: SMTP (lettre) or `.eml` files in a folder.
//! - [`intake`]: a raw RFC 5322 message becomes a ticket, or a reply on one; [`maildir`]
//!   takes in a Maildir's messages.

pub mod dispatch;
pub mod intake;
pub mod maildir;
pub mod outbox;
pub mod templates;
pub mod transport;

pub use dispatch::{Dispatcher, MailConfig};
pub use outbox::{OutboxProjection, migrate};
pub use templates::{MailKind, Templates};
pub use transport::Transport;
