//! Group commit: concurrent appends to *different* streams share one statement and one commit,
//! while each keeps its own expected-version check.
//!
//! Callers hand their append to a channel; `writers` worker tasks each take whatever is waiting
//! (at most one append per stream, at most [`BATCH_APPENDS_MAX`] appends and
//! [`BATCH_EVENTS_MAX`] events), write it as one batch, and answer each caller. No timer
//! delays a lone append: a batch is simply what piled up while the previous one committed.
//! When a batch fails as a whole (a unique key that another process raced us to), each of its
//! appends is retried alone, so every caller gets its own exact answer.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{AppendOutcome, ExpectedVersion, NewEvent, StoreError, StreamId};

/// The most appends one batch carries.
pub const BATCH_APPENDS_MAX: usize = 64;
/// The most events one batch carries (SQLite binds 11 parameters per event; its limit is 32,766).
pub const BATCH_EVENTS_MAX: usize = 2_000;
/// Times a worker yields to the runtime before closing a batch. Measured on 2 cores with 8
/// writers (ticket-bench): 0 yields left most batches at 1-2 appends and PostgreSQL at ~0.7 of
/// the raw INSERT rate; 2-8 yields brought it to ~0.9-1.0. A yield costs microseconds.
const GATHER_YIELDS: usize = 4;
/// Appends waiting for a batch before callers wait to hand theirs over.
const QUEUE_APPENDS_MAX: usize = 4_096;

pub(crate) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// What a backend does for the batcher.
#[async_trait]
pub(crate) trait BatchBackend: Send + Sync + 'static {
    /// Writes every request in one transaction. For each request, in order: its outcome, or
    /// `None` when its version check refused it (nothing of it was written). `Err` when the
    /// batch as a whole failed and nothing was written.
    async fn write_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Option<AppendOutcome>>, StoreError>;

    /// Writes one append alone, with the exact answer (conflict, retry, duplicate).
    async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError>;

    /// Why a refused append was refused (or that it was a retry of a stored one).
    async fn explain(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError>;

    /// Called after each batch that wrote something.
    fn appended(&self);
}

pub(crate) struct Batcher {
    sender: mpsc::Sender<AppendRequest>,
}

impl Batcher {
    /// Starts `writers` workers on the current tokio runtime. They stop when the batcher is dropped.
    pub fn start<B: BatchBackend>(backend: Arc<B>, writers: usize) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_APPENDS_MAX);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(worker(backend.clone(), receiver.clone()));
        }
        Self { sender }
    }

    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest { stream: stream.clone(), expected, events, reply };
        self.sender
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        let answer =
            answer.await.map_err(|_| StoreError::Unavailable("the store's writer stopped during the append".into()))?;
        metrics::histogram!("ticketd_append_duration_seconds").record(started.elapsed().as_secs_f64());
        answer
    }
}

async fn worker<B: BatchBackend>(backend: Arc<B>, receiver: Arc<Mutex<mpsc::Receiver<AppendRequest>>>) {
    // Appends this worker took but could not fit in its last batch (a second append to a
    // stream already in it): they go first next time.
    let mut deferred: VecDeque<AppendRequest> = VecDeque::new();
    loop {
        if deferred.is_empty() {
            let mut receiver = receiver.lock().await;
            match receiver.recv().await {
                Some(request) => deferred.push_back(request),
                None => return,
            }
            take_waiting(&mut receiver, &mut deferred);
            // Give the writers just answered by the previous batch a moment to hand in their
            // next append, so it rides this batch instead of waiting for the next one.
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
                take_waiting(&mut receiver, &mut deferred);
            }
        } else if let Ok(mut receiver) = receiver.try_lock() {
            // Never wait for the lock with work in hand: another worker may hold it while
            // it waits for new appends.
            take_waiting(&mut receiver, &mut deferred);
        }
        let mut batch = Vec::new();
        let mut streams = HashSet::new();
        let mut events = 0;
        let mut rest = VecDeque::new();
        while let Some(request) = deferred.pop_front() {
            let fits = batch.is_empty()
                || (batch.len() < BATCH_APPENDS_MAX && events + request.events.len() <= BATCH_EVENTS_MAX);
            if fits && streams.insert(request.stream.clone()) {
                events += request.events.len();
                batch.push(request);
            } else {
                rest.push_back(request);
            }
        }
        deferred = rest;
        write(&*backend, batch).await;
    }
}

fn take_waiting(receiver: &mut mpsc::Receiver<AppendRequest>, deferred: &mut VecDeque<AppendRequest>) {
    while deferred.len() < BATCH_APPENDS_MAX {
        match receiver.try_recv() {
            Ok(request) => deferred.push_back(request),
            Err(_) => break,
        }
    }
}

async fn write<B: BatchBackend>(backend: &B, batch: Vec<AppendRequest>) {
    metrics::histogram!("ticketd_append_batch_appends").record(batch.len() as f64);
    if batch.len() == 1 {
        let request = batch.into_iter().next().expect("one request");
        let result = backend.append_alone(&request.stream, request.expected, &request.events).await;
        if result.as_ref().is_ok_and(|outcome| !outcome.already_stored) {
            backend.appended();
        }
        let _ = request.reply.send(result);
        return;
    }
    match backend.write_batch(&batch).await {
        Ok(outcomes) => {
            if outcomes.iter().any(Option::is_some) {
                backend.appended();
            }
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                let result = match outcome {
                    Some(outcome) => Ok(outcome),
                    None => backend.explain(&request.stream, request.expected, &request.events).await,
                };
                let _ = request.reply.send(result);
            }
        }
        Err(error) => {
            tracing::debug!(%error, appends = batch.len(), "a batch failed as a whole; writing its appends alone");
            for request in batch {
                let result = backend.append_alone(&request.stream, request.expected, &request.events).await;
                if result.as_ref().is_ok_and(|outcome| !outcome.already_stored) {
                    backend.appended();
                }
                let _ = request.reply.send(result);
            }
        }
    }
}
