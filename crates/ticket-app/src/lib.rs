//! The application layer: runs ticket commands against any [`event_store::EventStore`].
//!
//! - [`TicketService::execute`]: load the ticket, decide, append with the expected version;
//!   on a lost race, decide again on the new state (unless the caller pinned a version).
//! - [`envelope`]: domain events ↔ stored events (the codec plus actor, correlation, causation).
//! - [`Clock`]: time is injected, never read from the system inside the logic.
//!
//! It knows nothing of HTTP or SQL.

pub mod attachments;
pub mod envelope;
pub mod registry;
mod service;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use envelope::{CommandContext, TicketRecord};
pub use service::{AppError, CommandOutcome, ServiceOptions, TicketService};

/// Where "now" comes from. Tests move a manual clock; the service reads the system's.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(start)))
    }
    /// Moves the clock to `instant` (tests replaying a dated history).
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = instant;
    }
    pub fn advance(&self, by: chrono::Duration) {
        // A std mutex is right here: held for one addition, never across an await.
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
