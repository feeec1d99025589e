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
pub use service::{AppError, CommandOutcome, ServiceOptions, TicketService, idempotent_event_id};

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

/// A clock read from a file holding one RFC 3339 instant: for end-to-end tests and drills that
/// move time through a running service (`ticketd serve --clock-file`). Until the file holds a
/// valid instant, the system clock is used.
#[derive(Debug)]
pub struct FileClock(std::path::PathBuf);

impl FileClock {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Arc<Self> {
        Arc::new(Self(path.into()))
    }
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
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
