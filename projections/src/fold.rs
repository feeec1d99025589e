//! Folding a ticket's stream inside a projection, with a cache of recently folded tickets.
//!
//! A projection often needs the ticket as it stood just before the event it applies. A cached
//! fold is trusted only if it is exactly one event behind that event (after a rolled-back batch
//! or a restart it is not), otherwise the ticket is folded again from its stream.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_store::{RecordedEvent, SharedStore};
use lru::LruCache;
use ticket_app::envelope::decode;
use ticket_domain::vocabulary::TicketId;
use ticket_domain::{Ticket, TicketEvent};

/// A fold of one ticket's events: a version (the events applied) and a total `evolve`.
pub trait Fold: Clone + Default + Send + Sync + 'static {
    fn version(&self) -> u64;
    fn evolve(self, event: &TicketEvent, at: DateTime<Utc>) -> Self;
}

impl Fold for Ticket {
    fn version(&self) -> u64 {
        Ticket::version(self)
    }

    fn evolve(self, event: &TicketEvent, at: DateTime<Utc>) -> Self {
        Ticket::evolve(self, event, at)
    }
}

/// The folds of the most recently seen tickets.
#[derive(Clone)]
pub struct FoldCache<S> {
    store: SharedStore,
    /// A std mutex: held for a lookup or an insert, never across an await.
    folded: Arc<Mutex<LruCache<TicketId, S>>>,
}

impl<S: Fold> FoldCache<S> {
    pub fn new(store: SharedStore, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("not zero");
        Self { store, folded: Arc::new(Mutex::new(LruCache::new(capacity))) }
    }

    /// The ticket folded up to just before `event`.
    pub async fn before(&self, ticket_id: TicketId, event: &RecordedEvent) -> Result<S, sqlx::Error> {
        let cached = self.folded.lock().expect("fold cache").get(&ticket_id).cloned();
        if let Some(folded) = cached.filter(|t| t.version() + 1 == event.version) {
            return Ok(folded);
        }
        let mut folded = S::default();
        while folded.version() + 1 < event.version {
            let missing = (event.version - 1 - folded.version()) as usize;
            let page = self
                .store
                .read_stream(&event.stream_id, folded.version(), missing)
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("reading the stream: {e}")))?;
            if page.is_empty() {
                return Err(sqlx::Error::Protocol(format!(
                    "stream {} ends before version {}",
                    event.stream_id, event.version
                )));
            }
            for recorded in &page {
                let record = decode(recorded).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                folded = folded.evolve(&record.event, record.occurred_at);
            }
        }
        Ok(folded)
    }

    /// The ticket's latest fold, if cached.
    pub fn get(&self, ticket_id: TicketId) -> Option<S> {
        self.folded.lock().expect("fold cache").peek(&ticket_id).cloned()
    }

    /// Remembers `folded` as the ticket's latest fold.
    pub fn put(&self, ticket_id: TicketId, folded: S) {
        self.folded.lock().expect("fold cache").put(ticket_id, folded);
    }
}
