//! The ticket domain of the complaint-handling service: the vocabulary of the policy, the
//! commands people and the system issue, the events they cause, and the workflow between them.
//!
//! - [`vocabulary`]: channels, categories, service areas, actors, and the parsed value types.
//! - [`command`]: [`TicketCommand`], what may be asked of a ticket.
//! - [`event`]: [`TicketEvent`], what happened; personal data only under `personal`.
//! - [`ticket`]: [`Ticket::decide`] and [`Ticket::evolve`], the state machine.
//! - [`codec`]: event payloads as stored, their schema versions and upcasting.
//!
//! This crate does no I/O and reads no clock: time comes in as arguments. It knows nothing of
//! HTTP, SQL or how events are stored.

pub mod calendar;
pub mod codec;
pub mod command;
pub mod event;
pub mod registry;
pub mod sample;
pub mod sla;
pub mod ticket;
pub mod vocabulary;

pub use command::{CommandKind, ReceiveTicket, TicketCommand};
pub use event::TicketEvent;
pub use ticket::{DomainError, Status, SurveyStatus, Ticket, TicketState};
