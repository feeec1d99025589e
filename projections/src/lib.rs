//! Read models: projections of the global event order into tables that queries read.
//!
//! A [`Projection`] applies one event inside a transaction; the [`run`] loop applies each batch
//! of events and the projection's new checkpoint in **one** transaction, so an event is never
//! applied twice nor skipped, across crashes and restarts. A projection that cannot apply an
//! event stops with an error naming it; it never skips it.
//!
//! The runners of one process follow the log together through a [`FollowedLog`]: each new event
//! is read from the database once ([`SharedTail`]) and, if it is a ticket's, decoded once.
//!
//! Read models live in the same database as the events. Projections so far:
//! - `ticket_index`: human ticket number → ticket id.
//! - [`ticket_view`]: every ticket as it stands; [`queues`] reads it.
//! - [`sla_clocks`]: every ticket's SLA clocks, and the scheduler that records warnings and
//!   breaches.

pub mod fold;
pub mod ledger;
mod pg_copy;
pub mod queues;
mod rebuild;
pub mod sla_clocks;
pub mod statistics;
pub mod ticket_view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_store::{Database, GlobalPosition, RecordedEvent, SharedStore, SharedTail, StoreError, Subscription};
use sqlx::{PgConnection, SqliteConnection};
use ticket_app::envelope::{TicketRecord, decode};
use ticket_domain::TicketEvent;
use ticket_domain::codec::DecodeError;
use ticket_domain::vocabulary::{TicketId, TicketNumber};
use tokio_util::sync::CancellationToken;

pub use rebuild::{REBUILD_BATCH_MAX, RebuildOptions, rebuild, rebuild_with};

/// Runs the projections' migrations.
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let result = match database {
        Database::Sqlite { write, .. } => event_store::migrator(sqlx::migrate!("./migrations/sqlite")).run(write).await,
        Database::Postgres(pool) => event_store::migrator(sqlx::migrate!("./migrations/postgres")).run(pool).await,
    };
    result.map_err(|e| StoreError::Database(format!("migrating the read models: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection '{projection}' failed on the event at position {position} ({event_type}): {reason}")]
    Event { projection: &'static str, position: i64, event_type: String, reason: String },
    /// Someone else moved the checkpoint (a rebuild, or another instance): go on from there.
    #[error("projection '{projection}' checkpoint is at {found}, not {expected}")]
    Moved { projection: &'static str, expected: i64, found: i64 },
    /// Another instance took the job over: stand by.
    #[error(transparent)]
    LeaseLost(#[from] event_store::lease::LeaseLost),
}

impl From<event_store::lease::CheckError> for ProjectionError {
    fn from(error: event_store::lease::CheckError) -> Self {
        match error {
            event_store::lease::CheckError::Lost(lost) => Self::LeaseLost(lost),
            event_store::lease::CheckError::Store(store) => Self::Store(store),
        }
    }
}

/// A transaction on the read models' database.
pub enum Transaction<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Runs `$body` with `$connection` bound to the transaction's connection, whichever the database
/// (for statements written once for both: `$n` parameters, types both understand).
#[macro_export]
macro_rules! on_transaction {
    ($transaction:expr, |$connection:ident| $body:expr) => {
        match $transaction {
            $crate::Transaction::Sqlite(connection) => {
                let $connection = &mut **connection;
                $body
            }
            $crate::Transaction::Postgres(connection) => {
                let $connection = &mut **connection;
                $body
            }
        }
    };
}

/// One read model.
pub trait Projection: Clone + Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// The tables this read model writes, and only these (a rebuild builds them aside and
    /// swaps them in).
    fn tables(&self) -> &'static [&'static str];

    /// Applies one ticket event. Events of other streams are not passed in.
    fn apply<'a>(
        &'a self,
        transaction: &'a mut Transaction<'_>,
        ticket_id: TicketId,
        event: &'a RecordedEvent,
        decoded: &'a TicketEvent,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a;

    /// Called before the first event of a batch.
    fn begin_batch(&self) {}

    /// Called after the last event of a batch, in its transaction: for projections that write
    /// once per batch what several events changed.
    fn finish_batch<'a>(
        &'a self,
        _transaction: &'a mut Transaction<'_>,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        async { Ok(()) }
    }
}

/// Where a projection stands, for health checks and metrics.
#[derive(Debug, Clone)]
pub struct ProjectionStatus {
    pub position: GlobalPosition,
    pub events_applied: u64,
    pub failed: Option<String>,
    /// Times the runner was interrupted by the store (an outage, a deadlock) and started again.
    pub retries: u64,
    /// The last such interruption.
    pub last_error: Option<String>,
    /// Microseconds from an event's recording to the commit of the read model that shows it,
    /// for the events recorded while this runner follows the log (not those it caught up on).
    pub lag_us: hdrhistogram::Histogram<u64>,
    /// Whether this instance leads the job (false: a standby, another instance applies the
    /// log and `position` is where this one last saw the checkpoint).
    pub leading: bool,
}

impl Default for ProjectionStatus {
    fn default() -> Self {
        Self {
            position: GlobalPosition::default(),
            events_applied: 0,
            failed: None,
            retries: 0,
            last_error: None,
            lag_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
            leading: true,
        }
    }
}

pub type SharedStatus = Arc<Mutex<ProjectionStatus>>;

/// The most events applied in one transaction.
pub const APPLY_BATCH_MAX: usize = 1_000;

/// The least time between the starts of two batches of one runner. After a quiet spell the first
/// new event is applied at once; while the log is busy, each batch gathers what came in this
/// long, so one transaction (one read, one checkpoint, one commit, a few bulk statements)
/// carries many events instead of each paying for its own. Bounds the lag it adds.
pub const PROJECTION_PACE: std::time::Duration = std::time::Duration::from_millis(30);

/// What the projection runners of one process follow together: the log through one
/// [`SharedTail`] (each new event read from the database once), and each ticket event decoded
/// once for all of them. Cheap to clone.
#[derive(Clone)]
pub struct FollowedLog {
    store: SharedStore,
    decoded: Arc<DecodedEvents>,
}

impl FollowedLog {
    pub fn new(store: SharedStore) -> Self {
        Self::with_capacity(store, SharedTail::CAPACITY_DEFAULT)
    }

    /// Keeps up to `capacity` events read and decoded.
    pub fn with_capacity(store: SharedStore, capacity: usize) -> Self {
        Self { store: Arc::new(SharedTail::new(store, capacity)), decoded: Arc::new(DecodedEvents::new(capacity)) }
    }
}

/// A ticket event as the runners apply it: its ticket and its decoded record.
pub struct DecodedEvent {
    pub ticket_id: TicketId,
    pub record: TicketRecord,
}

/// Ticket events decoded recently, by event id, shared by runners so each event is decoded once.
/// An event is immutable once stored, so its decoding never goes stale; only successes are kept.
pub struct DecodedEvents {
    capacity: usize,
    /// A std mutex: held for a lookup or an insert, never across an await or a decode.
    entries: Mutex<Kept>,
}

/// The decoded events kept, and the order they came in (the oldest leaves first).
#[derive(Default)]
struct Kept {
    by_id: std::collections::HashMap<uuid::Uuid, Arc<DecodedEvent>>,
    order: std::collections::VecDeque<uuid::Uuid>,
}

impl DecodedEvents {
    /// `capacity` 0 keeps nothing (every event is decoded where it is needed).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::default() }
    }

    /// The event decoded, or `None` when it is not a ticket's.
    fn get(&self, event: &RecordedEvent) -> Result<Option<Arc<DecodedEvent>>, DecodeError> {
        if let Some(found) = self.entries.lock().expect("decoded events lock").by_id.get(&event.event_id) {
            return Ok(Some(found.clone()));
        }
        let Some(ticket_id) = ticket_of(event) else { return Ok(None) };
        let decoded = Arc::new(DecodedEvent { ticket_id, record: decode(event)? });
        if self.capacity > 0 {
            let mut entries = self.entries.lock().expect("decoded events lock");
            let Kept { by_id, order } = &mut *entries;
            if by_id.insert(event.event_id, decoded.clone()).is_none() {
                order.push_back(event.event_id);
            }
            while order.len() > self.capacity {
                if let Some(oldest) = order.pop_front() {
                    by_id.remove(&oldest);
                }
            }
        }
        Ok(Some(decoded))
    }
}

/// Follows the global order and applies it to `projection` until `shutdown`.
pub async fn run<P: Projection>(
    projection: P,
    log: FollowedLog,
    database: Database,
    status: SharedStatus,
    shutdown: CancellationToken,
) -> Result<(), ProjectionError> {
    run_fenced(projection, log, database, None, status, shutdown).await
}

/// [`run`] as a job's leader: every batch re-checks `fence` in its own transaction.
pub async fn run_fenced<P: Projection>(
    projection: P,
    log: FollowedLog,
    database: Database,
    fence: Option<event_store::lease::Fence>,
    status: SharedStatus,
    shutdown: CancellationToken,
) -> Result<(), ProjectionError> {
    let FollowedLog { store, decoded } = log;
    let mut position = checkpoint(&database, projection.name()).await?;
    status.lock().expect("status lock").position = position;
    let following_since = chrono::Utc::now();
    let mut subscription = Subscription::new(store.clone(), position).with_batch_size(APPLY_BATCH_MAX);
    let mut last_batch: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = subscription.next() => next?,
        };
        // A busy log gathers until PROJECTION_PACE has passed since the last batch began.
        if let Some(last) = last_batch {
            tokio::time::sleep_until(last + PROJECTION_PACE).await;
        }
        last_batch = Some(tokio::time::Instant::now());
        let mut batch = vec![first];
        batch.extend(subscription.next_batch_now().await?);
        let last = batch.last().map_or(position, |e| e.position);
        let events = batch.len() as u64;
        let batch: Arc<[RecordedEvent]> = batch.into();
        match apply_batch(&projection, &database, &decoded, fence.clone(), position, batch.clone()).await {
            Ok(()) => {
                let committed = chrono::Utc::now();
                position = last;
                let mut status = status.lock().expect("status lock");
                status.position = position;
                status.events_applied += events;
                for event in batch.iter().filter(|e| e.recorded_at >= following_since) {
                    let lag = (committed - event.recorded_at).num_microseconds().unwrap_or(i64::MAX);
                    status.lag_us.saturating_record(lag.max(1) as u64);
                }
            }
            Err(ProjectionError::Moved { found, .. }) => {
                tracing::info!(
                    projection = projection.name(),
                    from = found,
                    "checkpoint moved (a rebuild?); following it"
                );
                position = GlobalPosition(found);
                status.lock().expect("status lock").position = position;
                subscription = Subscription::new(store.clone(), position).with_batch_size(APPLY_BATCH_MAX);
            }
            Err(error) => {
                if matches!(error, ProjectionError::Event { .. }) {
                    status.lock().expect("status lock").failed = Some(error.to_string());
                }
                return Err(error);
            }
        }
    }
}

/// Runs `run` in the background, restarting it after database outages (not after an event it
/// cannot apply: that needs a person).
pub fn spawn<P: Projection + Clone>(
    projection: P,
    log: FollowedLog,
    database: Database,
    shutdown: CancellationToken,
) -> (SharedStatus, tokio::task::JoinHandle<()>) {
    spawn_led(projection, log, database, None, shutdown)
}

/// [`spawn`] as a job with one leader among the instances: the runner applies the log only
/// while this instance holds the projection's lease (named after the projection), stands by
/// otherwise, and releases the lease when `shutdown` fires.
pub fn spawn_led<P: Projection + Clone>(
    projection: P,
    log: FollowedLog,
    database: Database,
    leases: Option<event_store::lease::Leases>,
    shutdown: CancellationToken,
) -> (SharedStatus, tokio::task::JoinHandle<()>) {
    let status: SharedStatus = Arc::default();
    let task_status = status.clone();
    let handle = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut leadership = None;
        loop {
            if leadership.as_ref().is_none_or(|l: &event_store::lease::Leadership| l.is_lost())
                && let Some(leases) = &leases
            {
                task_status.lock().expect("status lock").leading = false;
                drop(leadership.take());
                match leases.lead(projection.name(), &shutdown).await {
                    Some(led) => leadership = Some(led),
                    None => return,
                }
                task_status.lock().expect("status lock").leading = true;
            }
            let fence = leadership.as_ref().map(|l| l.fence());
            let result = tokio::select! {
                result = run_fenced(
                    projection.clone(),
                    log.clone(),
                    database.clone(),
                    fence,
                    task_status.clone(),
                    shutdown.clone(),
                ) => result,
                // A lost lease stops the runner between batches (a batch in flight finds it
                // lost in its own transaction).
                _ = async { match &leadership { Some(l) => l.lost().await, None => std::future::pending().await } } => {
                    Err(ProjectionError::LeaseLost(event_store::lease::LeaseLost {
                        job: projection.name(),
                        epoch: leadership.as_ref().map_or(0, |l| l.epoch()),
                    }))
                }
            };
            match result {
                Ok(()) => {
                    if let Some(leadership) = leadership.take() {
                        leadership.release().await;
                    }
                    return;
                }
                Err(ProjectionError::LeaseLost(lost)) => {
                    tracing::warn!(%lost, projection = projection.name(), "standing by");
                    leadership = None;
                    backoff = Duration::from_millis(100);
                }
                // Only an event that cannot be applied stops a projection: that needs a person.
                Err(error @ ProjectionError::Event { .. }) => {
                    tracing::error!(
                        %error,
                        projection = projection.name(),
                        "PROJECTION STOPPED: this read model no longer follows the log until the event is mended \
                         and the service restarted"
                    );
                    return;
                }
                // Anything else — the store away, a deadlock, a busy database — is retried.
                Err(error) => {
                    tracing::warn!(%error, projection = projection.name(), "projection interrupted; retrying");
                    {
                        let mut status = task_status.lock().expect("status lock");
                        status.failed = None;
                        status.retries += 1;
                        status.last_error = Some(error.to_string());
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            if let Some(leadership) = leadership.take() {
                                leadership.release().await;
                            }
                            return;
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    (status, handle)
}

/// Waits until the read model `name` has applied everything committed before this call (the
/// log's highest committed position then), for at most `max`; false when it did not catch up in
/// time (its projection is stopped or far behind). Reads that must not miss a moment-old write
/// (a number lookup, a person's export) wait here.
pub async fn caught_up(database: &Database, name: &str, max: Duration) -> Result<bool, StoreError> {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    let head: i64 = match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    let deadline = tokio::time::Instant::now() + max;
    let mut pause = Duration::from_millis(2);
    while checkpoint(database, name).await?.0 < head {
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
    Ok(true)
}

/// The log's highest committed position (0 when empty).
pub async fn log_head(database: &Database) -> Result<i64, StoreError> {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .map_err(StoreError::from_sqlx)
}

/// Where a read model's checkpoint stands (0 before its first batch).
pub async fn checkpoint_of(database: &Database, name: &str) -> Result<GlobalPosition, StoreError> {
    checkpoint(database, name).await
}

async fn checkpoint(database: &Database, name: &str) -> Result<GlobalPosition, StoreError> {
    let position: Option<i64> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?1")
                .bind(name)
                .fetch_optional(read)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(GlobalPosition(position.unwrap_or(0)))
}

/// Applies a batch and moves the checkpoint from `start` to its last event, in one
/// transaction. The checkpoint moves first, and only if it is still at `start`: that takes the
/// write lock, and refuses a batch another runner (or a rebuild) has overtaken.
async fn apply_batch<P: Projection>(
    projection: &P,
    database: &Database,
    decoded: &Arc<DecodedEvents>,
    fence: Option<event_store::lease::Fence>,
    start: GlobalPosition,
    batch: Arc<[RecordedEvent]>,
) -> Result<(), ProjectionError> {
    // sqlx cannot roll back a PostgreSQL transaction whose `BEGIN` was cancelled in flight
    // (sqlx#4393, in 0.8.6 and 0.9.0): the connection would go back to the pool inside it, and
    // the next borrower's writes would be lost with it. So the transaction runs in a task of
    // its own, which a caller that stops waiting (an aborted runner) does not cancel.
    let task =
        tokio::spawn(apply_batch_in_task(projection.clone(), database.clone(), decoded.clone(), fence, start, batch));
    task.await.map_err(|e| StoreError::Database(format!("applying a batch: {e}")))?
}

async fn apply_batch_in_task<P: Projection>(
    projection: P,
    database: Database,
    decoded: Arc<DecodedEvents>,
    fence: Option<event_store::lease::Fence>,
    start: GlobalPosition,
    batch: Arc<[RecordedEvent]>,
) -> Result<(), ProjectionError> {
    let (projection, database, batch) = (&projection, &database, &batch[..]);
    let last = batch.last().map_or(start.0, |e| e.position.0);
    let moved = |found: Option<i64>| ProjectionError::Moved {
        projection: projection.name(),
        expected: start.0,
        found: found.unwrap_or(0),
    };
    match database {
        Database::Sqlite { write, .. } => {
            let mut transaction = write.begin().await.map_err(StoreError::from_sqlx)?;
            let now = chrono::Utc::now().timestamp_micros();
            let claimed = sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                 WHERE projection_checkpoints.position = ?4",
            )
            .bind(projection.name())
            .bind(last)
            .bind(now)
            .bind(start.0)
            .execute(&mut *transaction)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
            if claimed != 1 {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = ?1")
                        .bind(projection.name())
                        .fetch_optional(&mut *transaction)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                return Err(moved(found));
            }
            apply_events(projection, &mut Transaction::Sqlite(&mut transaction), &decoded, batch).await?;
            transaction.commit().await.map_err(StoreError::from_sqlx)?;
        }
        Database::Postgres(pool) => {
            let mut transaction = pool.begin().await.map_err(StoreError::from_sqlx)?;
            // A read model and its checkpoint are rebuilt from the log if a crash loses their
            // last commit (they are lost together), so this commit need not wait for the disk.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *transaction)
                .await
                .map_err(StoreError::from_sqlx)?;
            // Only the job's leader writes: a paused old leader finds its lease gone here.
            if let Some(fence) = &fence {
                fence.check_in(&mut transaction).await?;
            }
            let claimed = sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                 WHERE projection_checkpoints.position = $3",
            )
            .bind(projection.name())
            .bind(last)
            .bind(start.0)
            .execute(&mut *transaction)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
            if claimed != 1 {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                        .bind(projection.name())
                        .fetch_optional(&mut *transaction)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                return Err(moved(found));
            }
            apply_events(projection, &mut Transaction::Postgres(&mut transaction), &decoded, batch).await?;
            transaction.commit().await.map_err(StoreError::from_sqlx)?;
        }
    }
    Ok(())
}

async fn apply_events<P: Projection>(
    projection: &P,
    transaction: &mut Transaction<'_>,
    decoded: &DecodedEvents,
    batch: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    projection.begin_batch();
    for event in batch {
        let fail = |reason: String| ProjectionError::Event {
            projection: projection.name(),
            position: event.position.0,
            event_type: event.event_type.clone(),
            reason,
        };
        let Some(ticket_event) = decoded.get(event).map_err(|e| fail(e.to_string()))? else { continue };
        projection
            .apply(transaction, ticket_event.ticket_id, event, &ticket_event.record.event)
            .await
            .map_err(|e| transient_or(e, |e| fail(e.to_string())))?;
    }
    projection.finish_batch(transaction).await.map_err(|e| {
        transient_or(e, |e| ProjectionError::Event {
            projection: projection.name(),
            position: batch.last().map_or(0, |e| e.position.0),
            event_type: "(end of batch)".into(),
            reason: e.to_string(),
        })
    })
}

/// A database error while applying: a transient one (a deadlock, a busy database, a lost
/// connection) is the store's, retried with backoff; any other means this event cannot be applied.
fn transient_or(error: sqlx::Error, event_error: impl FnOnce(sqlx::Error) -> ProjectionError) -> ProjectionError {
    if event_store::is_transient(&error) {
        ProjectionError::Store(StoreError::from_sqlx(error))
    } else {
        event_error(error)
    }
}

fn ticket_of(event: &RecordedEvent) -> Option<TicketId> {
    let id = event.stream_id.as_str().strip_prefix(TicketId::STREAM_PREFIX)?;
    uuid::Uuid::parse_str(id).ok().map(TicketId::from_uuid)
}

/// Human ticket number → ticket id.
#[derive(Debug, Clone, Default)]
pub struct TicketIndex {
    /// The current batch's rows (number, ticket id, position), inserted when the batch ends.
    pending: Arc<Mutex<Vec<(i64, uuid::Uuid, i64)>>>,
}

impl TicketIndex {
    pub const NAME: &'static str = "ticket_index";
}

impl Projection for TicketIndex {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["ticket_index"]
    }

    async fn apply(
        &self,
        _transaction: &mut Transaction<'_>,
        ticket_id: TicketId,
        event: &RecordedEvent,
        decoded: &TicketEvent,
    ) -> Result<(), sqlx::Error> {
        if let TicketEvent::Received(received) = decoded {
            let row = (received.number.get() as i64, ticket_id.as_uuid(), event.position.0);
            self.pending.lock().expect("pending rows").push(row);
        }
        Ok(())
    }

    fn begin_batch(&self) {
        self.pending.lock().expect("pending rows").clear();
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let rows = std::mem::take(&mut *self.pending.lock().expect("pending rows"));
        if rows.is_empty() {
            return Ok(());
        }
        match transaction {
            Transaction::Sqlite(connection) => {
                // Many rows per statement: each is a round trip to sqlx's SQLite thread.
                for chunk in rows.chunks(1_000) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO ticket_index (number, ticket_id, position) ",
                    );
                    insert.push_values(chunk, |mut row, (number, ticket_id, position)| {
                        row.push_bind(*number).push_bind(*ticket_id).push_bind(*position);
                    });
                    insert.build().execute(&mut **connection).await?;
                }
            }
            Transaction::Postgres(connection) => {
                // One statement for the whole batch.
                let numbers: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.1).collect();
                let positions: Vec<i64> = rows.iter().map(|r| r.2).collect();
                sqlx::query(
                    "INSERT INTO ticket_index (number, ticket_id, position) \
                     SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[])",
                )
                .bind(numbers)
                .bind(ids)
                .bind(positions)
                .execute(&mut **connection)
                .await?;
            }
        }
        Ok(())
    }
}

/// The ticket a human number names, if the index has seen it.
pub async fn ticket_by_number(database: &Database, number: TicketNumber) -> Result<Option<TicketId>, StoreError> {
    let number = number.get() as i64;
    let id: Option<uuid::Uuid> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT ticket_id FROM ticket_index WHERE number = ?1")
                .bind(number)
                .fetch_optional(read)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT ticket_id FROM ticket_index WHERE number = $1")
                .bind(number)
                .fetch_optional(pool)
                .await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(id.map(TicketId::from_uuid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use event_store::StreamId;
    use ticket_app::CommandContext;
    use ticket_domain::vocabulary::{Actor, Role};
    use ticket_domain::{Ticket, TicketCommand, sample};

    fn stored(stream: &str, position: i64, new: event_store::NewEvent) -> RecordedEvent {
        RecordedEvent {
            position: GlobalPosition(position),
            stream_id: StreamId::parse(stream).unwrap(),
            version: 1,
            event_id: new.event_id,
            event_type: new.event_type,
            schema_version: new.schema_version,
            occurred_at: new.occurred_at,
            recorded_at: new.occurred_at,
            metadata: new.metadata,
            payload: new.payload,
        }
    }

    fn received(position: i64) -> (TicketId, RecordedEvent) {
        let id = TicketId::new();
        let now = Utc::now();
        let events = Ticket::default().decide(TicketCommand::Receive(sample::receive(position as u64)), now).unwrap();
        let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
        let new = ticket_app::envelope::to_new_event(&events[0], &context, now);
        (id, stored(&id.stream_name(), position, new))
    }

    #[test]
    fn each_event_is_decoded_once_while_it_is_kept() {
        let decoded = DecodedEvents::new(2);
        let (id, first) = received(1);
        let once = decoded.get(&first).unwrap().unwrap();
        assert_eq!(once.ticket_id, id);
        assert!(matches!(once.record.event, TicketEvent::Received(_)));
        assert!(Arc::ptr_eq(&once, &decoded.get(&first).unwrap().unwrap()), "the second runner gets the same decoding");
        // Two newer events push the first out: it is decoded afresh (and equal).
        for position in [2, 3] {
            decoded.get(&received(position).1).unwrap().unwrap();
        }
        let again = decoded.get(&first).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&once, &again));
        assert_eq!(again.record.event_id, once.record.event_id);
        assert_eq!(decoded.entries.lock().unwrap().by_id.len(), 2, "never more than the capacity");
    }

    #[test]
    fn other_streams_are_skipped_and_damaged_events_are_errors_never_kept() {
        let decoded = DecodedEvents::new(8);
        let (_, event) = received(1);
        let registry = stored(
            "registry-main",
            2,
            event_store::NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                metadata: event.metadata.clone(),
                payload: event.payload.clone(),
            },
        );
        assert!(decoded.get(&registry).unwrap().is_none());
        let mut damaged = event.clone();
        damaged.payload = event_store::Json::from_value(&serde_json::json!({"number": "not a number"}));
        assert!(decoded.get(&damaged).is_err());
        assert!(decoded.get(&damaged).is_err(), "a failure is not remembered as a success");
        assert!(decoded.entries.lock().unwrap().by_id.is_empty());
    }
}
