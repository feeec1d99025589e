//! Ticket numbers to ticket ids, at once (read your own writes).
//!
//! The number index is a read model that follows the log within moments, so a number handed out
//! a moment ago may not be in it yet. A number this instance handed out is remembered here; any
//! other miss waits until the index has applied everything committed before the lookup began
//! (the log's highest committed position then), which covers a number another instance sharing
//! the store handed out before the client asked. Only then is a number unknown.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use event_store::{Database, StoreError};
use ticket_domain::vocabulary::{TicketId, TicketNumber};

/// How long a lookup waits for the number index to catch up before answering that it is behind.
pub const INDEX_WAIT_MAX: Duration = Duration::from_secs(5);

/// Numbers handed out here, remembered for lookups that come before the index has them.
const RECENT_NUMBERS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum NumberError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index did not catch up in time (its projection is stopped or far behind).
    #[error("the ticket number index is behind the log; try again in a moment or use the ticket id")]
    IndexBehind,
}

pub struct Numbers {
    database: Database,
    recent: Mutex<lru::LruCache<u64, TicketId>>,
}

impl Numbers {
    pub fn new(database: Database) -> Self {
        let capacity = NonZeroUsize::new(RECENT_NUMBERS).unwrap_or(NonZeroUsize::MIN);
        Self { database, recent: Mutex::new(lru::LruCache::new(capacity)) }
    }

    /// A number this instance has just handed out.
    pub fn remember(&self, number: TicketNumber, ticket: TicketId) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.put(number.get(), ticket);
        }
    }

    /// The ticket with this number, if any ticket committed before this call has it.
    pub async fn resolve(&self, number: TicketNumber) -> Result<Option<TicketId>, NumberError> {
        if let Some(ticket) = self.recent.lock().ok().and_then(|mut recent| recent.get(&number.get()).copied()) {
            return Ok(Some(ticket));
        }
        if let Some(ticket) = ticket_projections::ticket_by_number(&self.database, number).await? {
            return Ok(Some(ticket));
        }
        if !ticket_projections::caught_up(&self.database, ticket_projections::TicketIndex::NAME, INDEX_WAIT_MAX).await?
        {
            return Err(NumberError::IndexBehind);
        }
        Ok(ticket_projections::ticket_by_number(&self.database, number).await?)
    }
}
