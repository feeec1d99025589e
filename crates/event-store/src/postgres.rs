//! The production backend: PostgreSQL (13 or newer), shared by any number of service instances.
//!
//! An append is one statement and one round trip: it checks the expected version and inserts
//! the events together (`INSERT … SELECT … WHERE max(version) = expected`); two racing appends
//! that both pass the check are told apart by the `events_stream_version_key` unique index.
//!
//! Global order without holes: see ARCHITECTURE.md. In short, a position is
//! `(transaction id << 16) | index`; every append holds a shared advisory lock (taken before
//! its transaction id exists), and readers stop below the oldest transaction of this store
//! that holds it — never waiting for transactions of other databases or programs.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch::{AppendRequest, BatchBackend, Batcher};
use crate::*;

/// How to connect.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// A schema to keep the tables in (created if missing); `None` for the URL's default
    /// `search_path`. Tests use one schema each.
    pub schema: Option<String>,
    /// Batches written at the same time (group commit, see `batch.rs`). One gathers the
    /// biggest batches; more overlap commits but split batches (measured: 1 is best at 8
    /// writers on 2 cores).
    pub batch_writers: usize,
    /// What `recorded_at` reads.
    pub clock: StoreClock,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            schema: None,
            batch_writers: 1,
            clock: StoreClock::default(),
        }
    }
}

pub struct PostgresStore {
    inner: Arc<Inner>,
    batcher: Batcher,
}

struct Inner {
    pool: PgPool,
    appended: watch::Sender<u64>,
    /// The second half of the append lock's key: this store's schema, hashed.
    lock_key: i32,
    clock: StoreClock,
    /// The oldest append in flight as the last horizon read saw it, and when it last warned.
    in_flight: std::sync::Mutex<(Option<AppendInFlight>, Option<std::time::Instant>)>,
}

const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, occurred_at, recorded_at, \
                       actor::text, correlation_id, causation_id, payload::text";

/// One statement: the version check, the positions and the insert. `used` counts events this
/// transaction already appended (when a caller appends twice in one transaction), so that
/// positions stay unique within it; a transaction may hold up to 65,536 events.
const APPEND_SQL: &str = "\
    WITH appending AS (SELECT pg_advisory_xact_lock_shared($11::int4, $12::int4)::text AS taken), \
         tx AS (SELECT CASE WHEN appending.taken IS NOT NULL THEN pg_current_xact_id()::text::bigint << 16 END AS base \
                FROM appending), \
         used AS (SELECT count(*) AS n FROM events, tx WHERE position >= tx.base AND position < tx.base + 65536) \
    INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version, occurred_at, \
                        recorded_at, actor, correlation_id, causation_id, payload) \
    SELECT tx.base + used.n + e.ord - 1, e.event_id, $1, $2 + e.ord, e.event_type, \
           e.schema_version, e.occurred_at, $13, e.actor::jsonb, e.correlation_id, e.causation_id, e.payload::jsonb \
    FROM tx, used, \
         unnest($3::uuid[], $4::text[], $5::int4[], $6::timestamptz[], $7::text[], $8::uuid[], $9::uuid[], $10::text[]) \
         WITH ORDINALITY AS e(event_id, event_type, schema_version, occurred_at, actor, correlation_id, causation_id, \
                              payload, ord) \
    WHERE (SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1) = $2 \
      AND used.n + cardinality($3::uuid[]) <= 65536 \
    RETURNING position, version, recorded_at";

/// The first half of the advisory lock key every append holds (shared, for its transaction):
/// "tick". The second half is the store's schema ([`Inner::lock_key`]), so stores in other
/// schemas of one database never wait for each other.
const APPEND_LOCK_CLASS: i32 = 0x7469_636b;

/// The visibility horizon, in one statement (see `read_all`): the transaction id its snapshot
/// would give the next transaction (`xmax`), and the oldest of *this store's* appends still in
/// flight — transactions holding the append lock — with its backend, database and age. The
/// snapshot is the statement's, taken before the lock table and the backends are read.
/// `backend_xid` is 32 bits; it is widened against `xmax`, within 2^31 of it either way (a running
/// transaction's id may be above the snapshot's `xmax`, which is one past the last *completed*
/// one). [`WIDEN_XID_SQL`] is that expression alone, for tests.
const HORIZON_SQL: &str = "\
    WITH snapshot AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax), \
         in_flight AS ( \
           SELECT snapshot.xmax + (((a.backend_xid::text::bigint - (snapshot.xmax & 4294967295)) + 6442450944) \
                                   % 4294967296) - 2147483648 AS xid, \
                  a.pid, a.datname::text AS datname, \
                  EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8 AS age_seconds \
           FROM snapshot, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
           WHERE l.locktype = 'advisory' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2 \
             AND a.backend_xid IS NOT NULL) \
    SELECT snapshot.xmax, oldest.xid, oldest.pid, oldest.datname, oldest.age_seconds \
    FROM snapshot LEFT JOIN (SELECT * FROM in_flight ORDER BY xid LIMIT 1) oldest ON true";

/// The widening of a 32-bit transaction id `{xid}` against a 64-bit `{xmax}` that
/// [`HORIZON_SQL`] does (the same expression, with placeholders).
pub const WIDEN_XID_SQL: &str = "({xmax} + ((({xid} - ({xmax} & 4294967295)) + 6442450944) % 4294967296) - 2147483648)";

/// An append in flight longer than this is logged as a warning (naming its backend).
pub const IN_FLIGHT_WARN_AFTER: Duration = Duration::from_secs(5);

/// `idle_in_transaction_session_timeout` of every session the store opens.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

impl PostgresStore {
    /// Connects and migrates.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(url).map_err(StoreError::from_sqlx)?;
        if let Some(schema) = &options.schema {
            if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
                return Err(StoreError::InvalidInput(format!("'{schema}' is not a plain schema name")));
            }
            let mut setup = connect.connect().await.map_err(StoreError::from_sqlx)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut setup)
                .await
                .map_err(StoreError::from_sqlx)?;
            setup.close().await.map_err(StoreError::from_sqlx)?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        // A session of ours left idle inside a transaction (a process paused, a bug) is ended by
        // the server after a minute, with its locks: it must not hold back the xmin horizon or
        // the job leases' row locks of the other instances.
        let connect = connect.options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(StoreError::from_sqlx)?;
        crate::migrator(sqlx::migrate!("./migrations/postgres"))
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating: {e}")))?;
        let lock_key: i32 = sqlx::query_scalar("SELECT hashtext(current_schema()) & 2147483647")
            .fetch_one(&pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let inner = Arc::new(Inner {
            pool,
            appended: watch::Sender::new(0),
            lock_key,
            clock: options.clock.clone(),
            in_flight: std::sync::Mutex::new((None, None)),
        });
        let batcher = Batcher::start(inner.clone(), options.batch_writers);
        Ok(Self { inner, batcher })
    }

    /// The connection pool: read models live in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Appends on a connection the caller holds, possibly inside its own transaction, so that
    /// other writes (an outbox row, a read model) commit or roll back with the events. Until
    /// that transaction ends, readers see no event positioned after its events.
    pub async fn append_in(
        &self,
        connection: &mut sqlx::PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(&events)?;
        // Readers wait only for transactions that hold the append lock; one that wrote
        // before taking it could commit below a place a reader has already passed.
        let safe: bool = sqlx::query_scalar(
            "SELECT pg_current_xact_id_if_assigned() IS NULL OR EXISTS (SELECT 1 FROM pg_locks \
             WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND classid::bigint = $1 \
               AND objid::bigint = $2 AND objsubid = 2)",
        )
        .bind(i64::from(APPEND_LOCK_CLASS))
        .bind(i64::from(self.inner.lock_key))
        .fetch_one(&mut *connection)
        .await
        .map_err(StoreError::from_sqlx)?;
        if !safe {
            return Err(StoreError::InvalidInput(
                "append_in must come before any other write of its transaction (readers would not wait for it)".into(),
            ));
        }
        let outcome = match self.inner.try_insert(connection, stream, expected, &events).await? {
            Some(outcome) => outcome,
            None => return self.inner.explain(stream, expected, &events).await,
        };
        self.inner.appended();
        Ok(outcome)
    }
}

impl Inner {
    /// The insert alone: `None` when the version check or a unique key refused it.
    async fn try_insert(
        &self,
        connection: &mut sqlx::PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schema_versions: Vec<i32> = events.iter().map(|e| e.schema_version as i32).collect();
        let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
        let actors: Vec<&str> = events.iter().map(|e| e.metadata.actor.get()).collect();
        let correlations: Vec<Uuid> = events.iter().map(|e| e.metadata.correlation_id).collect();
        let causations: Vec<Option<Uuid>> = events.iter().map(|e| e.metadata.causation_id).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.get()).collect();
        let result = sqlx::query(APPEND_SQL)
            .bind(stream.as_str())
            .bind(expected.0 as i64)
            .bind(&ids)
            .bind(&types)
            .bind(&schema_versions)
            .bind(&occurred)
            .bind(&actors)
            .bind(&correlations)
            .bind(&causations)
            .bind(&payloads)
            .bind(APPEND_LOCK_CLASS)
            .bind(self.lock_key)
            .bind(self.clock.now())
            .fetch_all(&mut *connection)
            .await;
        let rows = match result {
            Ok(rows) => rows,
            // Our own named keys only: a racing append took the version, or an id is reused.
            Err(sqlx::Error::Database(error))
                if matches!(error.constraint(), Some("events_stream_version_key" | "events_event_id_key")) =>
            {
                Vec::new()
            }
            Err(error) => return Err(StoreError::from_sqlx(error)),
        };
        if rows.is_empty() {
            return Ok(None);
        }
        if rows.len() != events.len() {
            return Err(StoreError::Database(format!("append stored {} of {} events", rows.len(), events.len())));
        }
        let mut placed: Vec<(i64, i64, DateTime<Utc>)> = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(0)?, row.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)?;
        placed.sort_unstable_by_key(|(version, _, _)| *version);
        Ok(Some(AppendOutcome {
            version: expected.0 + events.len() as u64,
            recorded_at: placed[0].2,
            positions: placed.into_iter().map(|(_, position, _)| GlobalPosition(position)).collect(),
            already_stored: false,
        }))
    }

    /// Why an append was refused, read on a fresh connection (the caller's may be aborted).
    async fn explain_refused(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let stored = self.stored_with_ids(&ids).await?;
        let actual: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1")
            .bind(stream.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let actual = actual as u64;
        explain_refused_append(stream, expected, events, &stored, actual)
    }

    /// The first transaction id readers may not pass: the snapshot's `xmax`, or the oldest
    /// append of this store still in flight. Transactions of other stores, other databases or
    /// other programs never hold readers back.
    async fn horizon(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(HORIZON_SQL)
            .bind(i64::from(APPEND_LOCK_CLASS))
            .bind(i64::from(self.lock_key))
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let xmax: i64 = row.try_get(0).map_err(StoreError::from_sqlx)?;
        let oldest: Option<i64> = row.try_get(1).map_err(StoreError::from_sqlx)?;
        let in_flight = match oldest {
            Some(_) => Some(AppendInFlight {
                backend: row.try_get::<Option<i32>, _>(2).map_err(StoreError::from_sqlx)?.unwrap_or_default(),
                database: row.try_get::<Option<String>, _>(3).map_err(StoreError::from_sqlx)?.unwrap_or_default(),
                age: Duration::from_secs_f64(
                    row.try_get::<Option<f64>, _>(4).map_err(StoreError::from_sqlx)?.unwrap_or(0.0).max(0.0),
                ),
            }),
            None => None,
        };
        self.note_in_flight(in_flight);
        Ok(oldest.map_or(xmax, |xid| xid.min(xmax)))
    }

    /// Keeps the oldest append in flight for `/readyz`, and warns (at most every few seconds)
    /// when one has been open too long: readers wait for it.
    fn note_in_flight(&self, in_flight: Option<AppendInFlight>) {
        let Ok(mut slot) = self.in_flight.lock() else { return };
        if let Some(append) = &in_flight {
            let due = slot.1.is_none_or(|warned| warned.elapsed() >= IN_FLIGHT_WARN_AFTER);
            if append.age >= IN_FLIGHT_WARN_AFTER && due {
                tracing::warn!(
                    pid = append.backend,
                    database = %append.database,
                    age_seconds = append.age.as_secs_f64(),
                    "an append to the event store has been in flight for {:.1} s: readers (projections, \
                     mail, queues) wait for it; see pg_stat_activity for backend {}",
                    append.age.as_secs_f64(),
                    append.backend
                );
                slot.1 = Some(std::time::Instant::now());
            }
        }
        slot.0 = in_flight;
    }

    async fn stored_with_ids(&self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM events WHERE event_id = ANY($1) ORDER BY position");
        let rows = sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await.map_err(StoreError::from_sqlx)?;
        rows.iter().map(recorded_event).collect()
    }
}

fn recorded_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(StoreError::from_sqlx)?;
    let corrupt = |e: sqlx::Error| StoreError::Corrupt { position, reason: e.to_string() };
    let stream: String = row.try_get(1).map_err(corrupt)?;
    Ok(RecordedEvent {
        position: GlobalPosition(position),
        stream_id: StreamId::parse(&stream).map_err(|reason| StoreError::Corrupt { position, reason })?,
        version: row.try_get::<i64, _>(2).map_err(corrupt)? as u64,
        event_id: row.try_get(3).map_err(corrupt)?,
        event_type: row.try_get(4).map_err(corrupt)?,
        schema_version: row.try_get::<i32, _>(5).map_err(corrupt)? as u32,
        occurred_at: row.try_get(6).map_err(corrupt)?,
        recorded_at: row.try_get(7).map_err(corrupt)?,
        metadata: EventMetadata {
            actor: raw_json(row.try_get(8).map_err(corrupt)?, position)?,
            correlation_id: row.try_get(9).map_err(corrupt)?,
            causation_id: row.try_get(10).map_err(corrupt)?,
        },
        payload: raw_json(row.try_get(11).map_err(corrupt)?, position)?,
    })
}

#[async_trait]
impl EventStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_append(&events)?;
        self.batcher.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(stream.as_str())
            .bind(after_version as i64)
            .bind(clamp_limit(limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // The page is taken in index order first and cut at the visible bound after: with the
        // bound inside the scan's condition the planner cannot estimate the range and may read
        // and sort everything after `$1`.
        // The horizon is read first, in a statement of its own: the events are then read with a
        // later snapshot, in which every append below the horizon has finished.
        let horizon = self.inner.horizon().await?;
        let sql = format!(
            "SELECT * FROM (SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2) page \
             WHERE position < $3 ORDER BY position"
        );
        let rows = sqlx::query(&sql)
            .bind(after.0)
            .bind(clamp_limit(limit))
            .bind(horizon << 16)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(recorded_event).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1")
            .bind(stream.as_str())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(version as u64)
    }

    async fn next_sequence_value(&self, sequence: Sequence) -> Result<u64, StoreError> {
        let sql = match sequence {
            Sequence::TicketNumber => "SELECT nextval('ticket_number_seq')",
        };
        let value: i64 = sqlx::query_scalar(sql).fetch_one(&self.inner.pool).await.map_err(StoreError::from_sqlx)?;
        Ok(value as u64)
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    fn oldest_append_in_flight(&self) -> Option<AppendInFlight> {
        self.inner.in_flight.lock().ok().and_then(|slot| slot.0.clone())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM events LIMIT 1")
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}

/// The batch statement: like `APPEND_SQL`, for many streams at once; each stream's events go in
/// only if that stream passes its own version check.
const BATCH_SQL: &str = "\
    WITH appending AS (SELECT pg_advisory_xact_lock_shared($13::int4, $14::int4)::text AS taken), \
         tx AS (SELECT CASE WHEN appending.taken IS NOT NULL THEN pg_current_xact_id()::text::bigint << 16 END AS base \
                FROM appending), \
         used AS (SELECT count(*) AS n FROM events, tx WHERE position >= tx.base AND position < tx.base + 65536), \
         accepted AS (SELECT r.stream_id FROM unnest($1::text[], $2::bigint[]) AS r(stream_id, expected) \
                      WHERE (SELECT COALESCE(MAX(version), 0) FROM events WHERE events.stream_id = r.stream_id) \
                            = r.expected) \
    INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version, occurred_at, \
                        recorded_at, actor, correlation_id, causation_id, payload) \
    SELECT tx.base + used.n + e.ord - 1, e.event_id, e.stream_id, e.version, e.event_type, \
           e.schema_version, e.occurred_at, $15, e.actor::jsonb, e.correlation_id, e.causation_id, e.payload::jsonb \
    FROM tx, used, \
         unnest($3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::int4[], $8::timestamptz[], $9::text[], \
                $10::uuid[], $11::uuid[], $12::text[]) \
         WITH ORDINALITY AS e(stream_id, version, event_id, event_type, schema_version, occurred_at, actor, \
                              correlation_id, causation_id, payload, ord) \
    WHERE e.stream_id IN (SELECT stream_id FROM accepted) \
      AND used.n + cardinality($5::uuid[]) <= 65536 \
    RETURNING stream_id, version, position, recorded_at";

#[async_trait]
impl BatchBackend for Inner {
    async fn write_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Option<AppendOutcome>>, StoreError> {
        let request_streams: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
        let request_expected: Vec<i64> = batch.iter().map(|r| r.expected.0 as i64).collect();
        let events = || batch.iter().flat_map(|r| r.events.iter().enumerate().map(move |(i, e)| (r, i, e)));
        let streams: Vec<&str> = events().map(|(r, _, _)| r.stream.as_str()).collect();
        let versions: Vec<i64> = events().map(|(r, i, _)| (r.expected.0 + 1 + i as u64) as i64).collect();
        let ids: Vec<Uuid> = events().map(|(_, _, e)| e.event_id).collect();
        let types: Vec<&str> = events().map(|(_, _, e)| e.event_type.as_str()).collect();
        let schema_versions: Vec<i32> = events().map(|(_, _, e)| e.schema_version as i32).collect();
        let occurred: Vec<DateTime<Utc>> = events().map(|(_, _, e)| e.occurred_at).collect();
        let actors: Vec<&str> = events().map(|(_, _, e)| e.metadata.actor.get()).collect();
        let correlations: Vec<Uuid> = events().map(|(_, _, e)| e.metadata.correlation_id).collect();
        let causations: Vec<Option<Uuid>> = events().map(|(_, _, e)| e.metadata.causation_id).collect();
        let payloads: Vec<&str> = events().map(|(_, _, e)| e.payload.get()).collect();
        let rows = sqlx::query(BATCH_SQL)
            .bind(&request_streams)
            .bind(&request_expected)
            .bind(&streams)
            .bind(&versions)
            .bind(&ids)
            .bind(&types)
            .bind(&schema_versions)
            .bind(&occurred)
            .bind(&actors)
            .bind(&correlations)
            .bind(&causations)
            .bind(&payloads)
            .bind(APPEND_LOCK_CLASS)
            .bind(self.lock_key)
            .bind(self.clock.now())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        let mut placed: HashMap<String, Vec<(i64, i64, DateTime<Utc>)>> = HashMap::new();
        for row in &rows {
            let stream: String = row.try_get(0).map_err(StoreError::from_sqlx)?;
            let version: i64 = row.try_get(1).map_err(StoreError::from_sqlx)?;
            let position: i64 = row.try_get(2).map_err(StoreError::from_sqlx)?;
            let recorded_at: DateTime<Utc> = row.try_get(3).map_err(StoreError::from_sqlx)?;
            placed.entry(stream).or_default().push((version, position, recorded_at));
        }
        batch
            .iter()
            .map(|request| {
                let Some(mut rows) = placed.remove(request.stream.as_str()) else { return Ok(None) };
                if rows.len() != request.events.len() {
                    return Err(StoreError::Database(format!(
                        "a batch stored {} of {} events of '{}'",
                        rows.len(),
                        request.events.len(),
                        request.stream
                    )));
                }
                rows.sort_unstable_by_key(|(version, _, _)| *version);
                Ok(Some(AppendOutcome {
                    version: request.expected.0 + rows.len() as u64,
                    recorded_at: rows[0].2,
                    positions: rows.into_iter().map(|(_, position, _)| GlobalPosition(position)).collect(),
                    already_stored: false,
                }))
            })
            .collect()
    }

    async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let inserted = {
            // Released before explaining a refusal, which needs a connection of its own.
            let mut connection = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
            self.try_insert(&mut connection, stream, expected, events).await?
        };
        match inserted {
            Some(outcome) => Ok(outcome),
            None => self.explain_refused(stream, expected, events).await,
        }
    }

    async fn explain(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        self.explain_refused(stream, expected, events).await
    }

    fn appended(&self) {
        self.appended.send_modify(|n| *n += 1);
    }
}
