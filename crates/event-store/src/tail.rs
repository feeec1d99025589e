//! One read of the log for several followers.

use std::collections::VecDeque;

use async_trait::async_trait;

use crate::{
    AppendOutcome, EventStore, ExpectedVersion, GlobalPosition, NewEvent, RecordedEvent, Sequence, SharedStore,
    StoreError, StreamId,
};

/// A store that keeps the newest stretch of the global order it has read in memory, so that
/// several followers of the log (a process's projections) read each new event from the database
/// once instead of once each. Every other operation goes to the store unchanged.
///
/// Why this is exact: the stretch is the concatenation of `read_all` answers, each read from
/// where the previous one ended, so it holds every event between its start and its last one, in
/// order, and — by `read_all`'s own promise — no event can commit later into a place it covers.
/// A read from inside the stretch is answered from it; a read from its end goes to the store
/// (one follower at a time: the others wait and then find the answer in memory) and extends it;
/// a read from anywhere else (a follower far behind, after a rebuild) goes to the store alone.
pub struct SharedTail {
    store: SharedStore,
    capacity: usize,
    /// An async mutex: it is held across the store read that extends the stretch.
    tail: tokio::sync::Mutex<Tail>,
}

#[derive(Default)]
struct Tail {
    /// The position the stretch starts after (`None` before the first read).
    after: Option<GlobalPosition>,
    events: VecDeque<RecordedEvent>,
}

impl Tail {
    /// The position the stretch ends at.
    fn end(&self) -> Option<GlobalPosition> {
        self.events.back().map(|event| event.position).or(self.after)
    }
}

impl SharedTail {
    /// Events kept by default: a few batches of a busy log, a few megabytes.
    pub const CAPACITY_DEFAULT: usize = 4_096;

    pub fn new(store: SharedStore, capacity: usize) -> Self {
        Self { store, capacity: capacity.max(1), tail: tokio::sync::Mutex::default() }
    }
}

#[async_trait]
impl EventStore for SharedTail {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.store.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream, after_version, limit).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tail = self.tail.lock().await;
        let (start, end) = match (tail.after, tail.end()) {
            (Some(start), Some(end)) => (start, end),
            _ => (after, after),
        };
        if start <= after && after < end {
            let first = tail.events.partition_point(|event| event.position <= after);
            return Ok(tail.events.range(first..).take(limit).cloned().collect());
        }
        if after != end && !tail.events.is_empty() {
            // Outside the stretch: this follower reads on its own, without holding the others.
            drop(tail);
            return self.store.read_all(after, limit).await;
        }
        // At the stretch's end (or nothing is kept yet): read, and keep what was read.
        let read = self.store.read_all(after, limit).await?;
        if after != end {
            tail.after = Some(after);
            tail.events.clear();
        }
        tail.after.get_or_insert(after);
        tail.events.extend(read.iter().cloned());
        while tail.events.len() > self.capacity {
            if let Some(dropped) = tail.events.pop_front() {
                tail.after = Some(dropped.position);
            }
        }
        Ok(read)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.store.stream_version(stream).await
    }

    async fn next_sequence_value(&self, sequence: Sequence) -> Result<u64, StoreError> {
        self.store.next_sequence_value(sequence).await
    }

    fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.appended()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    fn oldest_append_in_flight(&self) -> Option<crate::AppendInFlight> {
        self.store.oldest_append_in_flight()
    }
}
