//! An append-only event store: streams with optimistic concurrency, one global order, and
//! subscriptions that deliver what commits.
//!
//! - [`EventStore`]: the one trait every backend implements. It speaks events and streams,
//!   never SQL, so that a third backend (KurrentDB) fits it and passes the same conformance
//!   suite (`tests/src/conformance.rs`).
//! - [`sqlite::SqliteStore`]: the embedded default, a file in a data directory (WAL, durable commits).
//! - [`postgres::PostgresStore`]: production; several service instances may share it.
//! - [`Subscription`]: follows the global order from a position, live.
//! - [`SharedTail`]: one read of the log's newest events for several followers.
//! - [`open`]: picks the backend from a database URL.
//!
//! The store knows nothing of tickets: payloads and actors are opaque JSON.

mod batch;
mod envelope;
pub mod lease;
pub mod postgres;
pub mod sqlite;
mod subscription;
mod tail;

use std::sync::Arc;

use async_trait::async_trait;

pub use batch::{BATCH_APPENDS_MAX, BATCH_EVENTS_MAX};
pub use envelope::*;
pub use subscription::Subscription;
pub use tail::SharedTail;

/// The most events one append may carry. Appends are one command's events; a bigger batch is
/// a bug, and the PostgreSQL position layout has room for 65,536 events per transaction.
pub const APPEND_EVENTS_MAX: usize = 1_000;

/// The most events one read returns.
pub const READ_EVENTS_MAX: usize = 10_000;

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the caller decided on: someone else appended first.
    /// Reload the stream and decide again.
    #[error("stream '{stream}' is at version {actual}, not the expected {expected}")]
    VersionConflict { stream: StreamId, expected: u64, actual: u64 },
    /// An event id is already stored elsewhere: this is not a retry of the same append.
    #[error("event {event_id} is already stored, in a different place")]
    DuplicateEvent { event_id: uuid::Uuid },
    /// The caller broke a limit or a rule of the API.
    #[error("invalid append: {0}")]
    InvalidInput(String),
    /// The database could not be reached or did not answer in time; retrying may help.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The database refused or failed in a way that retrying will not mend.
    #[error("the event store failed: {0}")]
    Database(String),
    /// Stored data could not be read back (a schema drift or an edited row).
    #[error("stored event at position {position} cannot be read: {reason}")]
    Corrupt { position: i64, reason: String },
}

impl StoreError {
    /// A database error as the store's error: connection trouble is `Unavailable` (worth a
    /// retry), anything else `Database`. For the crates that keep tables beside the events.
    pub fn from_sqlx(error: sqlx::Error) -> Self {
        if is_transient(&error) { Self::Unavailable(error.to_string()) } else { Self::Database(error.to_string()) }
    }
}

/// Whether a database error may pass if the same work is tried again: connection trouble, and
/// the refusals a busy database gives — PostgreSQL's serialization failures and deadlocks
/// (class 40), lock timeouts (55P03), cancelled statements and shutdowns (57), connection
/// exceptions (class 08); SQLite's BUSY and LOCKED.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => {
            let Some(code) = database.code() else { return false };
            if let Ok(sqlite) = code.parse::<i32>() {
                // Extended result codes: the primary code is the low byte.
                return matches!(sqlite & 0xff, 5 | 6);
            }
            code.starts_with("40") || code.starts_with("08") || code.starts_with("57") || code == "55P03"
        }
        _ => false,
    }
}

/// One backend of the event store.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The backend's name, as the benchmarks and logs print it.
    fn backend(&self) -> &'static str;

    /// Appends `events` to `stream` if the stream is at `expected` (0: the stream must not
    /// exist). All or nothing. Appending the same events again (same ids, same order, same
    /// place) is not an error: it returns the original outcome with `already_stored`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Events of `stream` with a version greater than `after_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of every stream after `after` in the global order, at most `limit`. An event
    /// that commits later never gets a position before one this has already returned.
    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's current version (0 when it does not exist).
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The next value of a named counter: unique and increasing (e.g. ticket numbers).
    async fn next_sequence_value(&self, sequence: Sequence) -> Result<u64, StoreError>;

    /// Ticks after each append this process commits. Subscriptions also poll, for appends by
    /// other processes.
    fn appended(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Checks that the database answers and its schema is migrated.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The oldest append still in flight that readers wait for, as the last read saw it
    /// (backends whose appends commit in order have none).
    fn oldest_append_in_flight(&self) -> Option<AppendInFlight> {
        None
    }
}

/// An append that readers of the global order wait for until it commits or rolls back.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendInFlight {
    /// The database backend running it (PostgreSQL: `pg_stat_activity.pid`).
    pub backend: i32,
    pub database: String,
    /// How long its transaction has been open.
    pub age: std::time::Duration,
}

/// Where a store reads "now" (an event's `recorded_at`): the system clock, unless the service
/// injects its one clock (`ticketd serve --clock-file`), so that every time it shows agrees.
#[derive(Clone)]
pub struct StoreClock(Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>);

impl StoreClock {
    pub fn new(now: impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        (self.0)()
    }
}

impl Default for StoreClock {
    fn default() -> Self {
        Self::new(chrono::Utc::now)
    }
}

impl std::fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreClock")
    }
}

/// A shared handle to any backend.
pub type SharedStore = Arc<dyn EventStore>;

/// The database behind a store, for the tables that live beside the events (read models,
/// tokens). On SQLite, writes must go through `write` (one writer at a time).
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite { write: sqlx::SqlitePool, read: sqlx::SqlitePool },
    Postgres(sqlx::PgPool),
}

/// A store and its database, as [`open`] returns them.
#[derive(Clone)]
pub struct OpenedStore {
    pub store: SharedStore,
    pub database: Database,
}

/// The SQLite file a store URL names (`None`: a PostgreSQL URL).
pub fn sqlite_path(url: &str) -> Option<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    Some(url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url))
}

/// Opens (and migrates) the store a URL names: `sqlite:PATH` (or a bare path) or
/// `postgres://…`.
pub async fn open(url: &str) -> Result<OpenedStore, StoreError> {
    open_with_clock(url, StoreClock::default()).await
}

/// [`open`], with the clock the store records events by.
pub async fn open_with_clock(url: &str, clock: StoreClock) -> Result<OpenedStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = postgres::PostgresOptions { clock, ..postgres::PostgresOptions::default() };
        let store = postgres::PostgresStore::connect(url, options).await?;
        let database = Database::Postgres(store.pool().clone());
        return Ok(OpenedStore { store: Arc::new(store), database });
    }
    let path = sqlite_path(url).expect("not a PostgreSQL URL");
    let options = sqlite::SqliteOptions { clock, ..sqlite::SqliteOptions::default() };
    let store = sqlite::SqliteStore::open(std::path::Path::new(path), options).await?;
    let database = Database::Sqlite { write: store.write_pool().clone(), read: store.read_pool().clone() };
    Ok(OpenedStore { store: Arc::new(store), database })
}

/// Several crates keep tables in the store's database, each with its own migrations
/// (event store 1-999, API 1000-1999, projections 2000-2999) in one `_sqlx_migrations`
/// table: each migrator must tolerate the others' entries.
pub fn migrator(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// Bounds a caller's `limit`.
pub(crate) fn clamp_limit(limit: usize) -> i64 {
    limit.clamp(1, READ_EVENTS_MAX) as i64
}

pub(crate) fn check_append(events: &[NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidInput("an append needs at least one event".into()));
    }
    if events.len() > APPEND_EVENTS_MAX {
        return Err(StoreError::InvalidInput(format!(
            "{} events in one append; at most {APPEND_EVENTS_MAX}",
            events.len()
        )));
    }
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::InvalidInput("the same event id twice in one append".into()));
    }
    Ok(())
}

/// Decides what a failed append means, from what the stream holds now: a retry of an append
/// that was stored (→ its original outcome), an event id used elsewhere, or a version conflict.
pub(crate) fn explain_refused_append(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    stored_with_same_ids: &[RecordedEvent],
    actual_version: u64,
) -> Result<AppendOutcome, StoreError> {
    if !stored_with_same_ids.is_empty() {
        let same_place = stored_with_same_ids.len() == events.len()
            && stored_with_same_ids.iter().zip(events).enumerate().all(|(i, (stored, new))| {
                stored.event_id == new.event_id
                    && &stored.stream_id == stream
                    && stored.version == expected.0 + 1 + i as u64
            });
        if same_place {
            return Ok(AppendOutcome::from_recorded(stored_with_same_ids, true));
        }
        let event_id = stored_with_same_ids[0].event_id;
        return Err(StoreError::DuplicateEvent { event_id });
    }
    Err(StoreError::VersionConflict { stream: stream.clone(), expected: expected.0, actual: actual_version })
}
