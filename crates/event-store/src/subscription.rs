//! Following the global order live.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::{GlobalPosition, RecordedEvent, SharedStore, StoreError};

/// Delivers every event after a position, in the global order, then each new one as it
/// commits. It wakes at once for appends made through this process's store, and polls every
/// `poll_interval` for appends by other processes.
pub struct Subscription {
    store: SharedStore,
    /// The last position read from the store (delivered or buffered).
    read_after: GlobalPosition,
    buffer: VecDeque<RecordedEvent>,
    appended: watch::Receiver<u64>,
    poll_interval: Duration,
    batch_size: usize,
}

impl Subscription {
    pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);
    pub const BATCH_SIZE_DEFAULT: usize = 1_000;

    pub fn new(store: SharedStore, after: GlobalPosition) -> Self {
        let appended = store.appended();
        Self {
            store,
            read_after: after,
            buffer: VecDeque::new(),
            appended,
            poll_interval: Self::POLL_INTERVAL_DEFAULT,
            batch_size: Self::BATCH_SIZE_DEFAULT,
        }
    }

    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The next event; waits until there is one.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            // Mark the current tick as seen *before* reading, so an append that commits
            // while we read still wakes the wait below.
            self.appended.borrow_and_update();
            let batch = self.store.read_all(self.read_after, self.batch_size).await?;
            match batch.last() {
                Some(last) => {
                    self.read_after = last.position;
                    self.buffer.extend(batch);
                }
                None => {
                    tokio::select! {
                        _ = self.appended.changed() => {}
                        _ = tokio::time::sleep(self.poll_interval) => {}
                    }
                }
            }
        }
    }

    /// Whatever is already committed and visible, without waiting: what was read before and
    /// not delivered yet, then what has committed since, up to one batch in all.
    pub async fn next_batch_now(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut batch: Vec<RecordedEvent> = self.buffer.drain(..).collect();
        if batch.len() >= self.batch_size {
            // More than a batch was buffered: deliver one, keep the rest for the next call.
            self.buffer.extend(batch.drain(self.batch_size..));
            return Ok(batch);
        }
        let read = self.store.read_all(self.read_after, self.batch_size - batch.len()).await?;
        if let Some(last) = read.last() {
            self.read_after = last.position;
        }
        batch.extend(read);
        Ok(batch)
    }
}
