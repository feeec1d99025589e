//! The embedded backend: one SQLite file, WAL journal, `synchronous = FULL` (a commit that
//! returned survives a power cut).
//!
//! SQLite lets one connection write at a time, so writes go through a pool of exactly one
//! connection (no SQLITE_BUSY between our own writers) and reads through a separate pool that
//! WAL lets run beside the writer. Other processes on the same file (the CLI) wait for the lock
//! up to `busy_timeout`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch::{AppendRequest, BatchBackend, Batcher};
use crate::*;

/// How to open the SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Connections for reads; WAL lets them read while the one writer writes.
    pub read_connections: u32,
    /// How long a write waits for another process holding the write lock.
    pub busy_timeout: Duration,
    /// `FULL` by default: the commit is on disk when `append` returns.
    pub synchronous: SqliteSynchronous,
    /// What `recorded_at` reads.
    pub clock: crate::StoreClock,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous: SqliteSynchronous::Full,
            clock: crate::StoreClock::default(),
        }
    }
}

/// How much of the file readers map into memory instead of copying pages through `read()`.
const READ_MMAP_BYTES: u64 = 1 << 30;

/// The read connections' row channel, in rows.
const READ_ROW_BUFFER: usize = 1_024;

/// The writer connection's page cache: 64 MiB (a negative `cache_size` is in KiB).
const WRITER_CACHE_KIB: i64 = -65_536;

/// Sequence values reserved per durable write.
const SEQUENCE_BLOCK: u64 = 32;

pub struct SqliteStore {
    inner: Arc<Inner>,
    batcher: Batcher,
    /// Per sequence: (last value handed out, last value reserved).
    sequence_blocks: tokio::sync::Mutex<std::collections::HashMap<&'static str, (u64, u64)>>,
}

struct Inner {
    writer: SqlitePool,
    reader: SqlitePool,
    appended: watch::Sender<u64>,
    clock: crate::StoreClock,
}

const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, occurred_at, recorded_at, \
                       actor, correlation_id, causation_id, payload";

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the store file at `path`, and migrates it.
    pub async fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create the data folder {}: {e}", parent.display()))
            })?;
        }
        let connect = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::from_sqlx)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(options.synchronous)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.busy_timeout * 2)
            // The one writer keeps the indexes it updates (events, read models) in memory:
            // SQLite's default 2 MiB page cache makes a big read model's upserts go to the OS.
            // Deleted and overwritten content is zeroed, not left in free space: an erased
            // person's data (a read model's row, an outbox address) leaves the file for good.
            .connect_with(
                connect.clone().pragma("cache_size", WRITER_CACHE_KIB.to_string()).pragma("secure_delete", "on"),
            )
            .await
            .map_err(StoreError::from_sqlx)?;
        crate::migrator(sqlx::migrate!("./migrations/sqlite"))
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating {}: {e}", path.display())))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            // Rows cross from SQLite's worker thread to the caller through a channel; a
            // channel as big as a page lets the worker fill it without a wake-up per row.
            .connect_with(connect.row_buffer_size(READ_ROW_BUFFER).pragma("mmap_size", READ_MMAP_BYTES.to_string()))
            .await
            .map_err(StoreError::from_sqlx)?;
        let inner = Arc::new(Inner { writer, reader, appended: watch::Sender::new(0), clock: options.clock });
        // One worker: SQLite has one writer connection anyway.
        let batcher = Batcher::start(inner.clone(), 1);
        Ok(Self { inner, batcher, sequence_blocks: Default::default() })
    }

    /// The pool that writes: for read models kept in the same file (one writer at a time).
    pub fn write_pool(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// The pool that reads.
    pub fn read_pool(&self) -> &SqlitePool {
        &self.inner.reader
    }
}

impl Inner {
    fn append_sql(events: usize) -> String {
        // ?1 stream, ?2 expected version, ?3 recorded_at, then 9 parameters per event.
        let rows: Vec<String> = (0..events)
            .map(|i| {
                let p = 4 + i * 9;
                format!(
                    "(?{},?{},?{},?{},?{},?{},?{},?{},?{})",
                    p,
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8
                )
            })
            .collect();
        format!(
            "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, occurred_at, recorded_at, \
                                 actor, correlation_id, causation_id, payload) \
             SELECT column1, ?1, ?2 + column2, column3, column4, column5, ?3, column6, column7, column8, column9 \
             FROM (VALUES {}) \
             WHERE (SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1) = ?2 \
             RETURNING position, version",
            rows.join(",")
        )
    }

    /// One append as one statement: `None` when the version check refused it.
    async fn insert(
        &self,
        connection: &mut sqlx::SqliteConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
        recorded_at: chrono::DateTime<Utc>,
    ) -> Result<Option<AppendOutcome>, sqlx::Error> {
        let sql = Self::append_sql(events.len());
        let mut query =
            sqlx::query(&sql).bind(stream.as_str()).bind(expected.0 as i64).bind(recorded_at.timestamp_micros());
        for (index, event) in events.iter().enumerate() {
            query = query
                .bind(event.event_id)
                .bind(index as i64 + 1)
                .bind(&event.event_type)
                .bind(i64::from(event.schema_version))
                .bind(event.occurred_at.timestamp_micros())
                .bind(event.metadata.actor.get())
                .bind(event.metadata.correlation_id)
                .bind(event.metadata.causation_id)
                .bind(event.payload.get());
        }
        let rows = query.fetch_all(&mut *connection).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        if rows.len() != events.len() {
            // The version check is one constant subquery, so this cannot happen; if it
            // does, fail loudly rather than report a partial append as done.
            return Err(sqlx::Error::Protocol(format!("append stored {} of {} events", rows.len(), events.len())));
        }
        let mut placed: Vec<(i64, i64)> = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(0)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        placed.sort_unstable();
        Ok(Some(AppendOutcome {
            version: expected.0 + events.len() as u64,
            positions: placed.into_iter().map(|(_, position)| GlobalPosition(position)).collect(),
            recorded_at: DateTime::from_timestamp_micros(recorded_at.timestamp_micros()).unwrap_or(recorded_at),
            already_stored: false,
        }))
    }

    async fn stored_with_ids(&self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        let placeholders = vec!["?"; ids.len()].join(",");
        let sql = format!("SELECT {COLUMNS} FROM events WHERE event_id IN ({placeholders}) ORDER BY position");
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.writer).await.map_err(StoreError::from_sqlx)?;
        rows.iter().map(recorded_event).collect()
    }
}

/// A page of the global order as one JSON array of arrays, in position order.
const READ_ALL_AS_JSON_SQL: &str = "\
    SELECT json_group_array(json_array(position, stream_id, version, hex(event_id), event_type, schema_version, \
                                       occurred_at, recorded_at, json(actor), hex(correlation_id), \
                                       hex(causation_id), json(payload)) ORDER BY position) \
    FROM (SELECT * FROM events WHERE position > ?1 ORDER BY position LIMIT ?2)";

fn recorded_event(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(StoreError::from_sqlx)?;
    let corrupt = |e: sqlx::Error| StoreError::Corrupt { position, reason: e.to_string() };
    let stream: String = row.try_get(1).map_err(corrupt)?;
    Ok(RecordedEvent {
        position: GlobalPosition(position),
        stream_id: StreamId::parse(&stream).map_err(|reason| StoreError::Corrupt { position, reason })?,
        version: row.try_get::<i64, _>(2).map_err(corrupt)? as u64,
        event_id: row.try_get(3).map_err(corrupt)?,
        event_type: row.try_get(4).map_err(corrupt)?,
        schema_version: row.try_get::<i64, _>(5).map_err(corrupt)? as u32,
        occurred_at: micros_to_time(row.try_get(6).map_err(corrupt)?, position)?,
        recorded_at: micros_to_time(row.try_get(7).map_err(corrupt)?, position)?,
        metadata: EventMetadata {
            actor: raw_json(row.try_get(8).map_err(corrupt)?, position)?,
            correlation_id: row.try_get(9).map_err(corrupt)?,
            causation_id: row.try_get(10).map_err(corrupt)?,
        },
        payload: raw_json(row.try_get(11).map_err(corrupt)?, position)?,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
            format!("SELECT {COLUMNS} FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3");
        let rows = sqlx::query(&sql)
            .bind(stream.as_str())
            .bind(after_version as i64)
            .bind(clamp_limit(limit))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // The page comes back as one JSON document, not a row per event: sqlx hands each row
        // from SQLite's worker thread to ours separately, and at ~5 µs a row that handoff, not
        // SQLite, was the cost of reading the log (ticket-bench `read_all`).
        let page: Option<String> = sqlx::query_scalar(READ_ALL_AS_JSON_SQL)
            .bind(after.0)
            .bind(clamp_limit(limit))
            .fetch_one(&self.inner.reader)
            .await
            .map_err(StoreError::from_sqlx)?;
        let Some(page) = page else { return Ok(Vec::new()) };
        let rows: Vec<crate::envelope::PageRow<'_>> = serde_json::from_str(&page)
            .map_err(|e| StoreError::Corrupt { position: after.0, reason: format!("reading a page: {e}") })?;
        rows.into_iter().map(crate::envelope::PageRow::into_recorded).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1")
            .bind(stream.as_str())
            .fetch_one(&self.inner.reader)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(version as u64)
    }

    async fn next_sequence_value(&self, sequence: Sequence) -> Result<u64, StoreError> {
        // Values are reserved a block at a time: one durable write (an fsync) per block, not
        // per ticket. Unique across processes; increasing within one; a crash leaves a gap.
        let mut blocks = self.sequence_blocks.lock().await;
        let block = blocks.entry(sequence.name()).or_insert((0, 0));
        if block.0 >= block.1 {
            let end: i64 = sqlx::query_scalar(
                "INSERT INTO sequences (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = value + ?2 RETURNING value",
            )
            .bind(sequence.name())
            .bind(SEQUENCE_BLOCK as i64)
            .fetch_one(&self.inner.writer)
            .await
            .map_err(StoreError::from_sqlx)?;
            *block = (end as u64 - SEQUENCE_BLOCK, end as u64);
        }
        block.0 += 1;
        Ok(block.0)
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM events LIMIT 1")
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl BatchBackend for Inner {
    async fn write_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Option<AppendOutcome>>, StoreError> {
        // One transaction, one statement per append (each with its own constant version
        // check), one commit: the fsync, which dominates, is shared.
        let recorded_at = self.clock.now();
        let mut transaction = self.writer.begin().await.map_err(StoreError::from_sqlx)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            let result =
                self.insert(&mut transaction, &request.stream, request.expected, &request.events, recorded_at).await;
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => outcomes.push(None),
                Err(error) => return Err(StoreError::from_sqlx(error)),
            }
        }
        transaction.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(outcomes)
    }

    async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let mut connection = self.writer.acquire().await.map_err(StoreError::from_sqlx)?;
        let result = self.insert(&mut connection, stream, expected, events, self.clock.now()).await;
        drop(connection);
        match result {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => self.explain(stream, expected, events).await,
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                self.explain(stream, expected, events).await
            }
            Err(error) => Err(StoreError::from_sqlx(error)),
        }
    }

    async fn explain(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let stored = self.stored_with_ids(&ids).await?;
        let actual: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1")
            .bind(stream.as_str())
            .fetch_one(&self.writer)
            .await
            .map_err(StoreError::from_sqlx)?;
        explain_refused_append(stream, expected, events, &stored, actual as u64)
    }

    fn appended(&self) {
        self.appended.send_modify(|n| *n += 1);
    }
}
