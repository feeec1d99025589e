//! Rebuilding a read model from the whole log, beside running services.
//!
//! A rebuild never shows a partial read model and never races the live runners:
//! 1. **Build aside.** The projection is applied from position 0 into *scratch* tables of the
//!    same shape — a scratch file beside the SQLite database, a scratch schema on PostgreSQL
//!    (`<schema>_rebuild_<projection>`, with `search_path` pointing there). Nothing live is
//!    touched and nothing is locked; a rebuild killed here leaves the live read model as it was
//!    (the scratch copy is discarded by the next rebuild).
//! 2. **Swap in one transaction.** The live checkpoint row is locked first (the order every
//!    runner takes: checkpoint, then rows, so nobody deadlocks), the live tables get the scratch
//!    rows, the events committed since the scratch copy's position are applied on top, and the
//!    checkpoint moves to the end — all in one commit. Readers see the old read model until that
//!    commit and the whole new one after it; a live runner waiting on the checkpoint row gets
//!    `Moved` and follows from the new position.
//!
//! Two rebuilds of one read model at once are refused (a lock on the scratch copy, released
//! when the process ends, even by SIGKILL).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use event_store::{Database, GlobalPosition, RecordedEvent, SharedStore, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqlitePool};

use crate::{DecodedEvents, Projection, ProjectionError, Transaction, apply_events};

/// The most events one rebuild transaction applies: bigger than a live batch, since a rebuild
/// has the whole log to go through and nobody waits for its first rows.
pub const REBUILD_BATCH_MAX: usize = 5_000;

/// How a rebuild runs.
pub struct RebuildOptions {
    /// Events per scratch transaction (and per read of the log).
    pub page_events: usize,
    /// Called after each page applied aside, with the events applied so far.
    pub progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self { page_events: REBUILD_BATCH_MAX, progress: None }
    }
}

/// Rebuilds `projection` from the whole log (see the module's documentation): returns the events
/// applied, aside and in the swap.
pub async fn rebuild<P: Projection>(
    projection: &P,
    store: &SharedStore,
    database: &Database,
) -> Result<u64, ProjectionError> {
    rebuild_with(projection, store, database, RebuildOptions::default()).await
}

/// [`rebuild`] with options.
pub async fn rebuild_with<P: Projection>(
    projection: &P,
    store: &SharedStore,
    database: &Database,
    options: RebuildOptions,
) -> Result<u64, ProjectionError> {
    if projection.tables().is_empty() {
        return Err(StoreError::InvalidInput(format!("{} has no tables to rebuild", projection.name())).into());
    }
    let scratch = Scratch::create(projection, database).await?;
    let result = async {
        // One projection reads the whole log once: nothing to share, nothing worth keeping.
        let decoded = Arc::new(DecodedEvents::new(0));
        let (position, aside) = build_aside(projection, store, &scratch, &decoded, &options).await?;
        let swapped = scratch.swap_in(projection, store, database, &decoded, position).await?;
        Ok::<u64, ProjectionError>(aside + swapped)
    }
    .await;
    scratch.discard().await;
    result
}

async fn build_aside<P: Projection>(
    projection: &P,
    store: &SharedStore,
    scratch: &Scratch,
    decoded: &Arc<DecodedEvents>,
    options: &RebuildOptions,
) -> Result<(GlobalPosition, u64), ProjectionError> {
    let page = options.page_events.max(1);
    let read = |after: GlobalPosition| {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(after, page).await })
    };
    let mut position = GlobalPosition::START;
    let mut applied = 0;
    let mut next = read(position);
    loop {
        let batch = next.await.map_err(|e| StoreError::Database(format!("reading the log: {e}")))??;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok((position, applied));
        };
        // Read the next page while this one is applied.
        next = read(last);
        scratch.apply(projection, decoded, &batch).await?;
        position = last;
        applied += batch.len() as u64;
        if let Some(progress) = &options.progress {
            progress(applied);
        }
    }
}

/// Where a read model is built aside.
enum Scratch {
    Sqlite {
        pool: SqlitePool,
        path: PathBuf,
        /// Held while the rebuild runs; the OS releases it when the process ends.
        _lock: std::fs::File,
    },
    Postgres {
        pool: sqlx::PgPool,
        /// The store's own schema and the scratch schema beside it.
        live: String,
        schema: String,
        /// A session holding the rebuild's advisory lock.
        lock: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    },
}

fn database_error(context: &str) -> impl Fn(sqlx::Error) -> ProjectionError + '_ {
    move |e| {
        ProjectionError::Store(match StoreError::from_sqlx(e) {
            StoreError::Database(reason) => StoreError::Database(format!("{context}: {reason}")),
            StoreError::Unavailable(reason) => StoreError::Unavailable(format!("{context}: {reason}")),
            other => other,
        })
    }
}

impl Scratch {
    async fn create<P: Projection>(projection: &P, database: &Database) -> Result<Self, ProjectionError> {
        let name = projection.name();
        match database {
            Database::Sqlite { read, .. } => {
                let live_path = read.connect_options().get_filename().to_path_buf();
                let path = scratch_path(&live_path, name);
                let mut lock_path = path.clone().into_os_string();
                lock_path.push(".lock");
                let lock = std::fs::File::create(&lock_path)
                    .map_err(|e| StoreError::Database(format!("creating the rebuild's lock file: {e}")))?;
                if lock.try_lock().is_err() {
                    return Err(StoreError::InvalidInput(format!("a rebuild of {name} is already running")).into());
                }
                remove_sqlite_files(&path);
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Off)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(database_error("opening the rebuild's scratch file"))?;
                // The live tables' own definitions (and indexes: upserts need their keys).
                for table in projection.tables() {
                    let definitions: Vec<String> = sqlx::query_scalar(
                        "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL \
                         ORDER BY type = 'table' DESC",
                    )
                    .bind(table)
                    .fetch_all(read)
                    .await
                    .map_err(database_error("reading the read model's definition"))?;
                    if definitions.is_empty() {
                        return Err(StoreError::Database(format!("the read model table {table} does not exist")).into());
                    }
                    for definition in definitions {
                        sqlx::query(&definition)
                            .execute(&pool)
                            .await
                            .map_err(database_error("creating scratch tables"))?;
                    }
                }
                Ok(Self::Sqlite { pool, path, _lock: lock })
            }
            Database::Postgres(pool) => {
                let mut lock = pool.acquire().await.map_err(database_error("starting a rebuild"))?;
                let live: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(&mut *lock)
                    .await
                    .map_err(database_error("starting a rebuild"))?;
                let schema = scratch_schema(&live, name);
                if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(StoreError::InvalidInput(format!("cannot name a scratch schema after '{live}'")).into());
                }
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                    .bind(&schema)
                    .fetch_one(&mut *lock)
                    .await
                    .map_err(database_error("starting a rebuild"))?;
                if !locked {
                    return Err(StoreError::InvalidInput(format!("a rebuild of {name} is already running")).into());
                }
                let mut statements =
                    vec![format!("DROP SCHEMA IF EXISTS {schema} CASCADE"), format!("CREATE SCHEMA {schema}")];
                for table in projection.tables() {
                    statements.push(format!("CREATE TABLE {schema}.{table} (LIKE {live}.{table} INCLUDING ALL)"));
                }
                for statement in statements {
                    sqlx::query(&statement)
                        .execute(&mut *lock)
                        .await
                        .map_err(database_error("creating scratch tables"))?;
                }
                Ok(Self::Postgres { pool: pool.clone(), live, schema, lock: Some(lock) })
            }
        }
    }

    /// Applies a page of the log to the scratch tables, in one transaction.
    async fn apply<P: Projection>(
        &self,
        projection: &P,
        decoded: &DecodedEvents,
        batch: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        match self {
            Self::Sqlite { pool, .. } => {
                let mut transaction = pool.begin().await.map_err(database_error("building aside"))?;
                apply_events(projection, &mut Transaction::Sqlite(&mut transaction), decoded, batch).await?;
                transaction.commit().await.map_err(database_error("building aside"))?;
            }
            Self::Postgres { pool, live, schema, .. } => {
                let mut transaction = pool.begin().await.map_err(database_error("building aside"))?;
                // Only for this transaction: the connection goes back to the pool afterwards.
                for statement in
                    [format!("SET LOCAL search_path TO {schema}, {live}"), "SET LOCAL synchronous_commit = off".into()]
                {
                    sqlx::query(&statement)
                        .execute(&mut *transaction)
                        .await
                        .map_err(database_error("building aside"))?;
                }
                apply_events(projection, &mut Transaction::Postgres(&mut transaction), decoded, batch).await?;
                transaction.commit().await.map_err(database_error("building aside"))?;
            }
        }
        Ok(())
    }

    /// Replaces the live read model with the scratch one, catches up with the log and moves the
    /// checkpoint, in one transaction. Returns the events applied while catching up.
    async fn swap_in<P: Projection>(
        &self,
        projection: &P,
        store: &SharedStore,
        database: &Database,
        decoded: &DecodedEvents,
        position: GlobalPosition,
    ) -> Result<u64, ProjectionError> {
        let name = projection.name();
        let applied = match (self, database) {
            (Self::Sqlite { path, .. }, Database::Sqlite { write, .. }) => {
                let mut connection = write.acquire().await.map_err(database_error("swapping in"))?;
                sqlx::query("ATTACH DATABASE ?1 AS rebuild")
                    .bind(path.to_string_lossy().into_owned())
                    .execute(&mut *connection)
                    .await
                    .map_err(database_error("swapping in"))?;
                let swapped = async {
                    let mut transaction = connection.begin().await.map_err(database_error("swapping in"))?;
                    // The first statement writes: the transaction holds the write lock from here
                    // on, so no append or runner commits until it ends.
                    sqlx::query(
                        "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?1, 0, ?2) \
                         ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at",
                    )
                    .bind(name)
                    .bind(chrono::Utc::now().timestamp_micros())
                    .execute(&mut *transaction)
                    .await
                    .map_err(database_error("swapping in"))?;
                    for table in projection.tables() {
                        let columns: Vec<String> =
                            sqlx::query_scalar("SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid")
                                .bind(table)
                                .fetch_all(&mut *transaction)
                                .await
                                .map_err(database_error("swapping in"))?;
                        let columns = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
                        for statement in [
                            format!("DELETE FROM main.{table}"),
                            format!("INSERT INTO main.{table} ({columns}) SELECT {columns} FROM rebuild.{table}"),
                        ] {
                            sqlx::query(&statement)
                                .execute(&mut *transaction)
                                .await
                                .map_err(database_error("swapping in"))?;
                        }
                    }
                    let (position, applied) =
                        catch_up(projection, store, &mut Transaction::Sqlite(&mut transaction), decoded, position)
                            .await?;
                    sqlx::query("UPDATE projection_checkpoints SET position = ?1, updated_at = ?2 WHERE name = ?3")
                        .bind(position.0)
                        .bind(chrono::Utc::now().timestamp_micros())
                        .bind(name)
                        .execute(&mut *transaction)
                        .await
                        .map_err(database_error("swapping in"))?;
                    transaction.commit().await.map_err(database_error("swapping in"))?;
                    Ok::<u64, ProjectionError>(applied)
                }
                .await;
                let detached = sqlx::query("DETACH DATABASE rebuild").execute(&mut *connection).await;
                if detached.is_err() {
                    // Never hand the store's writer back with the scratch file attached.
                    connection.detach();
                }
                swapped?
            }
            (Self::Postgres { pool, live, schema, .. }, Database::Postgres(_)) => {
                let mut transaction = pool.begin().await.map_err(database_error("swapping in"))?;
                // Checkpoint first, as every runner: a live batch in flight finishes before this
                // goes on, and the next one waits for this commit and then finds it moved.
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .execute(&mut *transaction)
                .await
                .map_err(database_error("swapping in"))?;
                sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
                    .bind(name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(database_error("swapping in"))?;
                for table in projection.tables() {
                    // DELETE, not TRUNCATE: readers go on reading the old rows until the commit.
                    for statement in [
                        format!("DELETE FROM {live}.{table}"),
                        format!("INSERT INTO {live}.{table} SELECT * FROM {schema}.{table}"),
                    ] {
                        sqlx::query(&statement)
                            .execute(&mut *transaction)
                            .await
                            .map_err(database_error("swapping in"))?;
                    }
                }
                let (position, applied) =
                    catch_up(projection, store, &mut Transaction::Postgres(&mut transaction), decoded, position)
                        .await?;
                sqlx::query("UPDATE projection_checkpoints SET position = $1, updated_at = now() WHERE name = $2")
                    .bind(position.0)
                    .bind(name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(database_error("swapping in"))?;
                transaction.commit().await.map_err(database_error("swapping in"))?;
                applied
            }
            _ => return Err(StoreError::InvalidInput("the scratch copy is of another database".into()).into()),
        };
        Ok(applied)
    }

    /// Drops the scratch copy (after a success or a failure; a killed rebuild's is dropped by
    /// the next one).
    async fn discard(self) {
        match self {
            Self::Sqlite { pool, path, _lock } => {
                pool.close().await;
                remove_sqlite_files(&path);
            }
            Self::Postgres { schema, lock, .. } => {
                if let Some(mut lock) = lock {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut *lock).await;
                    let _ =
                        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))").bind(&schema).execute(&mut *lock).await;
                }
            }
        }
    }
}

/// Applies, in the swap's transaction, every event after `position` until the log has no more:
/// returns the new position and the events applied.
async fn catch_up<P: Projection>(
    projection: &P,
    store: &SharedStore,
    transaction: &mut Transaction<'_>,
    decoded: &DecodedEvents,
    mut position: GlobalPosition,
) -> Result<(GlobalPosition, u64), ProjectionError> {
    let mut applied = 0;
    loop {
        let batch = store.read_all(position, REBUILD_BATCH_MAX).await?;
        let Some(last) = batch.last().map(|e| e.position) else { return Ok((position, applied)) };
        apply_events(projection, transaction, decoded, &batch).await?;
        position = last;
        applied += batch.len() as u64;
    }
}

/// `<schema>_rebuild_<projection>`, or — past PostgreSQL's 63-byte names — `rebuild_<projection>_`
/// and a hash of the schema's name (FNV-1a: the same in every process and build).
fn scratch_schema(live: &str, name: &str) -> String {
    let plain = format!("{live}_rebuild_{name}");
    if plain.len() <= 63 {
        return plain;
    }
    let hash = live
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("rebuild_{name}_{hash:016x}")
}

fn scratch_path(live: &Path, name: &str) -> PathBuf {
    let file = live.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "events.db".into());
    live.with_file_name(format!("{file}.rebuild-{name}"))
}

fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

#[cfg(test)]
mod tests {
    use super::scratch_schema;

    #[test]
    fn scratch_schemas_fit_postgresql_names_and_differ_per_schema() {
        assert_eq!(scratch_schema("public", "ticket_view"), "public_rebuild_ticket_view");
        let long = "bench_18e9006e68a049999e03d57aef3e210d_history";
        let other = "bench_28e9006e68a049999e03d57aef3e210d_history";
        let (a, b) = (scratch_schema(long, "ticket_index"), scratch_schema(other, "ticket_index"));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, scratch_schema(long, "ticket_index"), "stable");
    }
}
