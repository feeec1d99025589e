//! The tamper-evident ledger in the database: a follower of the global order that appends one
//! RFC 6962 leaf per stored event (`ticket_ledger::leaf`), the hashes of the subtrees each
//! completes, and signed checkpoints; the proofs the API serves; and [`verify`], which
//! recomputes the log against them.
//!
//! The ledger is **never rebuilt**: it is the witness, so on any mismatch between what it holds
//! and what the store holds it stops and raises the alarm (an error in the log and in
//! `/readyz`); it never repairs itself. Its tables refuse UPDATE and DELETE (migration 2008).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_store::{Database, GlobalPosition, RecordedEvent, SharedStore, StoreError, StreamId, Subscription};
use ticket_ledger::bundle::{ConsistencyBundle, ProofBundle, ProvenEvent};
use ticket_ledger::checkpoint::{Checkpoint, LedgerKey};
use ticket_ledger::leaf::LeafEvent;
use ticket_ledger::tree::{Frontier, Hashes, Needed, NodeId};
use ticket_ledger::{Hash, hash_from_bytes, hash_text};
use tokio_util::sync::CancellationToken;

use crate::{FollowedLog, PROJECTION_PACE, SharedStatus};

/// The ledger's row in `projection_checkpoints`.
pub const NAME: &str = "ledger";

/// The most events the ledger records in one transaction (catching up on a long log, its
/// batches are larger than a read model's: a leaf is cheap, a commit is not).
pub const LEDGER_BATCH_MAX: usize = 5_000;

/// When the ledger signs a checkpoint by itself.
#[derive(Clone)]
pub struct LedgerOptions {
    /// Without a key the ledger still records leaves; checkpoints need one.
    pub key: Option<Arc<LedgerKey>>,
    /// After this many new events…
    pub checkpoint_events: u64,
    /// …or this long after the last checkpoint, if the tree has grown.
    pub checkpoint_interval: Duration,
    /// The service's clock (a checkpoint's time).
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger and the store disagree: someone changed what was recorded.
    #[error("LEDGER MISMATCH: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Invalid(String),
    /// Another instance took the ledger over: stand by.
    #[error(transparent)]
    LeaseLost(#[from] event_store::lease::LeaseLost),
}

/// A stream that is not what `COPY` sends: a reading failure, not a finding.
impl From<crate::pg_copy::CopyError> for LedgerError {
    fn from(error: crate::pg_copy::CopyError) -> Self {
        LedgerError::Invalid(error.to_string())
    }
}

impl From<sqlx::Error> for LedgerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::from_sqlx(error))
    }
}

/// What the ledger holds: its size, the place in the log of its last leaf, and its frontier.
struct State {
    position: GlobalPosition,
    frontier: Frontier,
}

/// The number of leaves.
pub async fn size(database: &Database) -> Result<u64, LedgerError> {
    let size: Option<i64> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT MAX(leaf_index) + 1 FROM ledger_leaves").fetch_one(read).await?
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT MAX(leaf_index) + 1 FROM ledger_leaves").fetch_one(pool).await?
        }
    };
    Ok(size.unwrap_or(0) as u64)
}

/// The stored hashes of `nodes` (level 0 are the leaves).
pub async fn fetch_nodes(database: &Database, nodes: &[NodeId]) -> Result<Hashes, LedgerError> {
    let mut hashes = Hashes::default();
    let (leaves, inner): (Vec<NodeId>, Vec<NodeId>) = nodes.iter().partition(|node| node.level == 0);
    let wanted = |list: &[NodeId], leaf: bool| -> Vec<i64> {
        let mut keys: Vec<i64> =
            list.iter().map(|n| if leaf { n.index as i64 } else { n.stored_index() as i64 }).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    for (leaf, keys) in [(true, wanted(&leaves, true)), (false, wanted(&inner, false))] {
        for chunk in keys.chunks(500) {
            let rows: Vec<(i64, Vec<u8>)> = match database {
                Database::Sqlite { read, .. } => {
                    let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(if leaf {
                        "SELECT leaf_index, leaf_hash FROM ledger_leaves WHERE leaf_index IN ("
                    } else {
                        "SELECT stored_index, hash FROM ledger_nodes WHERE stored_index IN ("
                    });
                    let mut list = query.separated(", ");
                    for key in chunk {
                        list.push_bind(*key);
                    }
                    query.push(")");
                    query.build_query_as().fetch_all(read).await?
                }
                Database::Postgres(pool) => {
                    sqlx::query_as(if leaf {
                        "SELECT leaf_index, leaf_hash FROM ledger_leaves WHERE leaf_index = ANY($1)"
                    } else {
                        "SELECT stored_index, hash FROM ledger_nodes WHERE stored_index = ANY($1)"
                    })
                    .bind(chunk)
                    .fetch_all(pool)
                    .await?
                }
            };
            for (key, bytes) in rows {
                let hash = hash_from_bytes(&bytes)
                    .ok_or_else(|| LedgerError::Mismatch(format!("a stored ledger hash ({key}) is not 32 bytes")))?;
                let node =
                    if leaf { NodeId { level: 0, index: key as u64 } } else { NodeId::from_stored_index(key as u64) };
                hashes.0.insert(node, hash);
            }
        }
    }
    if let Some(missing) = nodes.iter().find(|node| !hashes.0.contains_key(node)) {
        return Err(LedgerError::Mismatch(format!(
            "the ledger lacks the hash of the subtree at level {} index {}",
            missing.level, missing.index
        )));
    }
    Ok(hashes)
}

/// The root hash of the tree of `size` leaves, from the stored hashes.
pub async fn tree_hash(database: &Database, size: u64) -> Result<Hash, LedgerError> {
    let hashes = fetch_nodes(database, &Needed::tree_hash(size)).await?;
    hashes.tree_hash(size).map_err(|e| LedgerError::Invalid(e.to_string()))
}

async fn load(database: &Database) -> Result<State, LedgerError> {
    let size = size(database).await?;
    let roots = fetch_nodes(database, &Frontier::nodes_for(size)).await?;
    let roots = Frontier::nodes_for(size).iter().map(|node| roots.0[node]).collect();
    let frontier = Frontier::from_roots(size, roots).map_err(LedgerError::Mismatch)?;
    let position = crate::checkpoint(database, NAME).await?;
    let last_leaf_position: Option<i64> = if size == 0 {
        None
    } else {
        Some(match database {
            Database::Sqlite { read, .. } => {
                sqlx::query_scalar("SELECT position FROM ledger_leaves WHERE leaf_index = ?1")
                    .bind(size as i64 - 1)
                    .fetch_one(read)
                    .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_scalar("SELECT position FROM ledger_leaves WHERE leaf_index = $1")
                    .bind(size as i64 - 1)
                    .fetch_one(pool)
                    .await?
            }
        })
    };
    if last_leaf_position.unwrap_or(0) != position.0 {
        return Err(LedgerError::Mismatch(format!(
            "the ledger's checkpoint is at position {position}, its last leaf at {}",
            last_leaf_position.unwrap_or(0)
        )));
    }
    Ok(State { position, frontier })
}

/// The checkpoints signed so far, oldest first.
pub async fn checkpoints(database: &Database) -> Result<Vec<(u64, Hash, String)>, LedgerError> {
    let rows: Vec<(i64, Vec<u8>, String)> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as("SELECT tree_size, root_hash, note FROM ledger_checkpoints ORDER BY tree_size")
                .fetch_all(read)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT tree_size, root_hash, note FROM ledger_checkpoints ORDER BY tree_size")
                .fetch_all(pool)
                .await?
        }
    };
    rows.into_iter()
        .map(|(size, root, note)| {
            let root = hash_from_bytes(&root)
                .ok_or_else(|| LedgerError::Mismatch(format!("the checkpoint at size {size} has no 32-byte root")))?;
            Ok((size as u64, root, note))
        })
        .collect()
}

/// The newest signed checkpoint (its size and note).
/// When the newest checkpoint was signed (`None`: never).
pub async fn latest_checkpoint_time(database: &Database) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let sql = "SELECT MAX(signed_at) FROM ledger_checkpoints";
    let micros: Option<i64> = match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await?,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    };
    Ok(micros.and_then(DateTime::from_timestamp_micros))
}

pub async fn latest_checkpoint(database: &Database) -> Result<Option<(u64, String)>, LedgerError> {
    let row: Option<(i64, String)> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as("SELECT tree_size, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(read)
                .await?
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT tree_size, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(row.map(|(size, note)| (size as u64, note)))
}

/// Signs a checkpoint of the ledger as it stands now and keeps it (a checkpoint of that size
/// signed already is kept as it was). Returns the size and the note.
pub async fn checkpoint_now(
    database: &Database,
    key: &LedgerKey,
    at: DateTime<Utc>,
) -> Result<(u64, String), LedgerError> {
    let size = size(database).await?;
    let root = tree_hash(database, size).await?;
    let note = key.sign(size, root, at);
    let root = root.0.to_vec();
    let at = at.timestamp_micros();
    match database {
        Database::Sqlite { write, .. } => {
            sqlx::query(
                "INSERT INTO ledger_checkpoints (tree_size, root_hash, signed_at, note) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (tree_size) DO NOTHING",
            )
            .bind(size as i64)
            .bind(root)
            .bind(at)
            .bind(&note)
            .execute(write)
            .await?;
        }
        Database::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO ledger_checkpoints (tree_size, root_hash, signed_at, note) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tree_size) DO NOTHING",
            )
            .bind(size as i64)
            .bind(root)
            .bind(at)
            .bind(&note)
            .execute(pool)
            .await?;
        }
    }
    let kept = latest_checkpoint(database).await?.filter(|(kept, _)| *kept == size);
    Ok(kept.unwrap_or((size, note)))
}

/// Follows the global order and appends it to the ledger until `shutdown`. Stops with
/// [`LedgerError::Mismatch`] on any disagreement between the ledger and the store.
pub async fn run(
    log: FollowedLog,
    database: Database,
    options: LedgerOptions,
    status: SharedStatus,
    shutdown: CancellationToken,
) -> Result<(), LedgerError> {
    run_fenced(log, database, options, None, status, shutdown).await
}

/// [`run`] as the job's leader: every batch re-checks `fence` in its own transaction.
pub async fn run_fenced(
    log: FollowedLog,
    database: Database,
    options: LedgerOptions,
    fence: Option<event_store::lease::Fence>,
    status: SharedStatus,
    shutdown: CancellationToken,
) -> Result<(), LedgerError> {
    let store = log.store.clone();
    let mut state = load(&database).await?;
    check_last_leaf(&store, &database, &state).await?;
    check_signed_roots(&database, &state).await?;
    status.lock().expect("status lock").position = state.position;
    let following_since = Utc::now();
    let mut subscription = Subscription::new(store.clone(), state.position).with_batch_size(LEDGER_BATCH_MAX);
    let mut last_batch: Option<tokio::time::Instant> = None;
    let mut signed_size = latest_checkpoint(&database).await?.map_or(0, |(size, _)| size);
    let mut last_signed = tokio::time::Instant::now();
    loop {
        let grown = state.frontier.size() > signed_size;
        let due = last_signed + options.checkpoint_interval;
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = subscription.next() => Some(next?),
            _ = tokio::time::sleep_until(due), if grown && options.key.is_some() => None,
        };
        if let Some(first) = first {
            if let Some(last) = last_batch {
                tokio::time::sleep_until(last + PROJECTION_PACE).await;
            }
            last_batch = Some(tokio::time::Instant::now());
            let mut batch = vec![first];
            batch.extend(subscription.next_batch_now().await?);
            let events = batch.len() as u64;
            let recorded: Vec<DateTime<Utc>> = batch.iter().map(|e| e.recorded_at).collect();
            match append(&database, fence.clone(), &mut state, batch).await {
                Ok(()) => {
                    let committed = Utc::now();
                    let mut status = status.lock().expect("status lock");
                    status.position = state.position;
                    status.events_applied += events;
                    for recorded_at in recorded.into_iter().filter(|at| *at >= following_since) {
                        let lag = (committed - recorded_at).num_microseconds().unwrap_or(i64::MAX);
                        status.lag_us.saturating_record(lag.max(1) as u64);
                    }
                }
                Err(AppendError::Moved) => {
                    // Another instance appended these: take the ledger as it now stands.
                    state = load(&database).await?;
                    status.lock().expect("status lock").position = state.position;
                    subscription = Subscription::new(store.clone(), state.position).with_batch_size(LEDGER_BATCH_MAX);
                }
                Err(AppendError::Ledger(error)) => return Err(error),
            }
        }
        let size = state.frontier.size();
        let Some(key) = &options.key else { continue };
        if size > signed_size && (size - signed_size >= options.checkpoint_events || tokio::time::Instant::now() >= due)
        {
            let (kept, _) = checkpoint_now(&database, key, (options.now)()).await?;
            signed_size = kept.max(size);
            last_signed = tokio::time::Instant::now();
        }
    }
}

enum AppendError {
    Moved,
    Ledger(LedgerError),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        Self::Ledger(error.into())
    }
}

/// Appends a batch's leaves and completed subtrees and moves the ledger's checkpoint, in one
/// transaction (in a task of its own: see `crate::apply_batch`).
async fn append(
    database: &Database,
    fence: Option<event_store::lease::Fence>,
    state: &mut State,
    batch: Vec<RecordedEvent>,
) -> Result<(), AppendError> {
    if let Some(first) = batch.first()
        && first.position <= state.position
    {
        return Err(AppendError::Ledger(LedgerError::Mismatch(format!(
            "the store gave the event at position {} after the ledger had passed {}",
            first.position, state.position
        ))));
    }
    let mut frontier = state.frontier.clone();
    let mut leaves: Vec<(i64, i64, uuid::Uuid, Vec<u8>)> = Vec::with_capacity(batch.len());
    let mut nodes: Vec<(i64, Vec<u8>)> = Vec::with_capacity(batch.len());
    let (batch, hashes) = tokio::task::spawn_blocking(move || {
        let hashes = hash_all(&batch);
        (batch, hashes)
    })
    .await
    .map_err(|e| AppendError::Ledger(LedgerError::Invalid(format!("hashing a batch: {e}"))))?;
    for (event, hash) in batch.iter().zip(hashes) {
        let index = frontier.size() as i64;
        for (node, hash) in frontier.push(hash).into_iter().skip(1) {
            nodes.push((node.stored_index() as i64, hash.0.to_vec()));
        }
        leaves.push((index, event.position.0, event.event_id, hash.0.to_vec()));
    }
    let start = state.position.0;
    let last = batch.last().map_or(start, |e| e.position.0);
    let database = database.clone();
    let task = tokio::spawn(async move { write_batch(&database, fence, start, last, leaves, nodes).await });
    task.await.map_err(|e| AppendError::Ledger(LedgerError::Invalid(format!("appending to the ledger: {e}"))))??;
    state.frontier = frontier;
    state.position = GlobalPosition(last);
    Ok(())
}

async fn write_batch(
    database: &Database,
    fence: Option<event_store::lease::Fence>,
    start: i64,
    last: i64,
    leaves: Vec<(i64, i64, uuid::Uuid, Vec<u8>)>,
    nodes: Vec<(i64, Vec<u8>)>,
) -> Result<(), AppendError> {
    match database {
        Database::Sqlite { write, .. } => {
            let mut transaction = write.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                 WHERE projection_checkpoints.position = ?4",
            )
            .bind(NAME)
            .bind(last)
            .bind(Utc::now().timestamp_micros())
            .bind(start)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            if claimed != 1 {
                return Err(AppendError::Moved);
            }
            for chunk in leaves.chunks(200) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO ledger_leaves (leaf_index, position, event_id, leaf_hash) ",
                );
                insert.push_values(chunk, |mut row, (index, position, id, hash)| {
                    row.push_bind(*index).push_bind(*position).push_bind(*id).push_bind(hash.as_slice());
                });
                insert.build().execute(&mut *transaction).await?;
            }
            for chunk in nodes.chunks(400) {
                let mut insert =
                    sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO ledger_nodes (stored_index, hash) ");
                insert.push_values(chunk, |mut row, (index, hash)| {
                    row.push_bind(*index).push_bind(hash.as_slice());
                });
                insert.build().execute(&mut *transaction).await?;
            }
            transaction.commit().await?;
        }
        Database::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            if let Some(fence) = &fence {
                fence.check_in(&mut transaction).await.map_err(|error| match error {
                    event_store::lease::CheckError::Lost(lost) => AppendError::Ledger(LedgerError::LeaseLost(lost)),
                    event_store::lease::CheckError::Store(store) => AppendError::Ledger(LedgerError::Store(store)),
                })?;
            }
            let claimed = sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at \
                 WHERE projection_checkpoints.position = $3",
            )
            .bind(NAME)
            .bind(last)
            .bind(start)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            if claimed != 1 {
                return Err(AppendError::Moved);
            }
            let (indexes, positions, ids, hashes): (Vec<i64>, Vec<i64>, Vec<uuid::Uuid>, Vec<Vec<u8>>) =
                leaves.into_iter().fold(Default::default(), |mut columns, (i, p, id, h)| {
                    columns.0.push(i);
                    columns.1.push(p);
                    columns.2.push(id);
                    columns.3.push(h);
                    columns
                });
            sqlx::query(
                "INSERT INTO ledger_leaves (leaf_index, position, event_id, leaf_hash) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::bytea[])",
            )
            .bind(indexes)
            .bind(positions)
            .bind(ids)
            .bind(hashes)
            .execute(&mut *transaction)
            .await?;
            let (indexes, hashes): (Vec<i64>, Vec<Vec<u8>>) = nodes.into_iter().unzip();
            sqlx::query(
                "INSERT INTO ledger_nodes (stored_index, hash) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
            )
            .bind(indexes)
            .bind(hashes)
            .execute(&mut *transaction)
            .await?;
            // Unlike a read model, the ledger waits for the disk: it is never built again.
            transaction.commit().await?;
        }
    }
    Ok(())
}

/// At start: the last leaf still recomputes from the event the store holds at its position.
async fn check_last_leaf(store: &SharedStore, database: &Database, state: &State) -> Result<(), LedgerError> {
    let size = state.frontier.size();
    if size == 0 {
        return Ok(());
    }
    let stored = fetch_nodes(database, &[NodeId { level: 0, index: size - 1 }]).await?;
    let event = store.read_all(GlobalPosition(state.position.0 - 1), 1).await?;
    match event.first() {
        Some(event) if event.position == state.position => {
            let recorded = stored.0[&NodeId { level: 0, index: size - 1 }];
            let now = ticket_ledger::leaf::leaf_hash(event);
            let resealed = || async {
                sealed_in_place(database).await.map(|records| {
                    records.get(&event.position.0).is_some_and(|(id, before, after)| {
                        *id == event.event_id && *before == recorded && *after == now
                    })
                })
            };
            if now != recorded && !resealed().await? {
                return Err(LedgerError::Mismatch(format!(
                    "the event at position {} is not the one the ledger recorded (run `ticketd verify`)",
                    state.position
                )));
            }
            Ok(())
        }
        _ => Err(LedgerError::Mismatch(format!(
            "the event at position {} the ledger recorded last is gone from the store (run `ticketd verify`)",
            state.position
        ))),
    }
}

/// At start: the newest signed checkpoint's root is the stored tree's root at its size.
async fn check_signed_roots(database: &Database, state: &State) -> Result<(), LedgerError> {
    let Some((size, note)) = latest_checkpoint(database).await? else { return Ok(()) };
    if size > state.frontier.size() {
        return Err(LedgerError::Mismatch(format!(
            "a checkpoint was signed at size {size}, but the ledger holds {} leaves",
            state.frontier.size()
        )));
    }
    let root = tree_hash(database, size).await?;
    let signed = checkpoints(database).await?.into_iter().find(|(s, _, _)| *s == size).map(|(_, root, _)| root);
    if signed != Some(root) || !note.contains(&hash_text(&root)) {
        return Err(LedgerError::Mismatch(format!(
            "the stored tree of {size} leaves does not have the root its signed checkpoint states"
        )));
    }
    Ok(())
}

/// Runs the ledger in the background, restarting it after database outages, never after a
/// mismatch (that needs a person).
pub fn spawn(
    log: FollowedLog,
    database: Database,
    options: LedgerOptions,
    shutdown: CancellationToken,
) -> (SharedStatus, tokio::task::JoinHandle<()>) {
    spawn_led(log, database, options, None, shutdown)
}

/// [`spawn`] as a job with one leader among the instances (see `crate::spawn_led`).
pub fn spawn_led(
    log: FollowedLog,
    database: Database,
    options: LedgerOptions,
    leases: Option<event_store::lease::Leases>,
    shutdown: CancellationToken,
) -> (SharedStatus, tokio::task::JoinHandle<()>) {
    let status: SharedStatus = Arc::default();
    let task_status = status.clone();
    let handle = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut leadership: Option<event_store::lease::Leadership> = None;
        loop {
            if leadership.as_ref().is_none_or(|l| l.is_lost())
                && let Some(leases) = &leases
            {
                task_status.lock().expect("status lock").leading = false;
                drop(leadership.take());
                match leases.lead(NAME, &shutdown).await {
                    Some(led) => leadership = Some(led),
                    None => return,
                }
                task_status.lock().expect("status lock").leading = true;
            }
            let fence = leadership.as_ref().map(|l| l.fence());
            let result = tokio::select! {
                result = run_fenced(log.clone(), database.clone(), options.clone(), fence, task_status.clone(), shutdown.clone()) => result,
                _ = async { match &leadership { Some(l) => l.lost().await, None => std::future::pending().await } } => {
                    Err(LedgerError::LeaseLost(event_store::lease::LeaseLost {
                        job: NAME,
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
                Err(LedgerError::LeaseLost(lost)) => {
                    tracing::warn!(%lost, "ledger: standing by");
                    leadership = None;
                    backoff = Duration::from_millis(100);
                }
                Err(error @ (LedgerError::Mismatch(_) | LedgerError::Invalid(_))) => {
                    tracing::error!(
                        %error,
                        "LEDGER STOPPED: the ledger and the store disagree; nothing is repaired. Run `ticketd verify` \
                         and call the auditors"
                    );
                    task_status.lock().expect("status lock").failed = Some(error.to_string());
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "ledger interrupted; retrying");
                    {
                        let mut status = task_status.lock().expect("status lock");
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

/// The leaves of the events at `positions`: position → leaf index.
async fn leaf_indexes(database: &Database, positions: &[i64]) -> Result<HashMap<i64, u64>, LedgerError> {
    let mut found = HashMap::new();
    for chunk in positions.chunks(500) {
        let rows: Vec<(i64, i64)> = match database {
            Database::Sqlite { read, .. } => {
                let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT position, leaf_index FROM ledger_leaves WHERE position IN (",
                );
                let mut list = query.separated(", ");
                for position in chunk {
                    list.push_bind(*position);
                }
                query.push(")");
                query.build_query_as().fetch_all(read).await?
            }
            Database::Postgres(pool) => {
                sqlx::query_as("SELECT position, leaf_index FROM ledger_leaves WHERE position = ANY($1)")
                    .bind(chunk)
                    .fetch_all(pool)
                    .await?
            }
        };
        found.extend(rows.into_iter().map(|(position, leaf)| (position, leaf as u64)));
    }
    Ok(found)
}

/// A stream's events with their inclusion proofs against the newest signed checkpoint. With a
/// key, a checkpoint is signed first when the newest does not cover every event the ledger
/// holds of the stream. `None` when no checkpoint has been signed.
pub async fn prove_stream(
    store: &SharedStore,
    database: &Database,
    stream: &StreamId,
    key: Option<&LedgerKey>,
    now: DateTime<Utc>,
) -> Result<Option<ProofBundle>, LedgerError> {
    let mut events = Vec::new();
    loop {
        let page = store.read_stream(stream, events.len() as u64, event_store::READ_EVENTS_MAX).await?;
        let done = page.len() < event_store::READ_EVENTS_MAX;
        events.extend(page);
        if done {
            break;
        }
    }
    let positions: Vec<i64> = events.iter().map(|e| e.position.0).collect();
    let leaves = leaf_indexes(database, &positions).await?;
    let mut latest = latest_checkpoint(database).await?;
    let last_leaf = leaves.values().max().copied();
    if let (Some(key), Some(last)) = (key, last_leaf)
        && latest.as_ref().is_none_or(|(size, _)| *size <= last)
    {
        latest = Some(checkpoint_now(database, key, now).await?);
    }
    let Some((size, note)) = latest else { return Ok(None) };
    let mut proven = Vec::new();
    let mut pending = Vec::new();
    let mut needed = HashSet::new();
    for event in &events {
        match leaves.get(&event.position.0) {
            Some(leaf) if *leaf < size => {
                needed.extend(Needed::inclusion(size, *leaf).map_err(|e| LedgerError::Invalid(e.to_string()))?);
            }
            _ => pending.push(event.version),
        }
    }
    let needed: Vec<NodeId> = needed.into_iter().collect();
    let hashes = fetch_nodes(database, &needed).await?;
    let leaf_nodes: Vec<NodeId> =
        leaves.values().filter(|leaf| **leaf < size).map(|leaf| NodeId { level: 0, index: *leaf }).collect();
    let recorded_leaves = fetch_nodes(database, &leaf_nodes).await?.0;
    for event in &events {
        let Some(leaf) = leaves.get(&event.position.0).copied().filter(|leaf| *leaf < size) else { continue };
        let proof = hashes.inclusion(size, leaf).map_err(|e| LedgerError::Invalid(e.to_string()))?;
        let event = LeafEvent::of(event);
        // An event `ticketd migrate` sealed in place since: the proof is of the recorded leaf.
        let now = event.leaf_hash();
        let recorded = recorded_leaves.get(&NodeId { level: 0, index: leaf }).copied().unwrap_or(now);
        proven.push(ProvenEvent {
            leaf_index: leaf,
            leaf_hash: hash_text(&recorded),
            inclusion_proof: proof.iter().map(hash_text).collect(),
            event,
            leaf_before: (recorded != now).then(|| hash_text(&recorded)),
        });
    }
    Ok(Some(ProofBundle {
        format: ticket_ledger::bundle::PROOF_FORMAT.into(),
        stream: stream.as_str().to_owned(),
        checkpoint: note,
        events: proven,
        not_yet_in_checkpoint: pending,
    }))
}

/// The proof that the tree of `old` leaves is a prefix of the signed tree of `new` leaves.
pub async fn prove_consistency(database: &Database, old: u64, new: u64) -> Result<ConsistencyBundle, LedgerError> {
    let signed = checkpoints(database).await?;
    let note_at = |size: u64| signed.iter().find(|(s, _, _)| *s == size).map(|(_, _, note)| note.clone());
    let new_checkpoint = note_at(new).ok_or_else(|| {
        LedgerError::Invalid(format!(
            "no checkpoint was signed at size {new}; signed sizes end with {:?}",
            signed.iter().rev().take(5).map(|(s, _, _)| *s).collect::<Vec<_>>()
        ))
    })?;
    if old == 0 || old > new {
        return Err(LedgerError::Invalid(format!("`from` must be between 1 and `to` ({new})")));
    }
    let mut needed = Needed::consistency(new, old).map_err(|e| LedgerError::Invalid(e.to_string()))?;
    needed.extend(Needed::tree_hash(old));
    let hashes = fetch_nodes(database, &needed).await?;
    let proof = hashes.consistency(new, old).map_err(|e| LedgerError::Invalid(e.to_string()))?;
    let old_root = hashes.tree_hash(old).map_err(|e| LedgerError::Invalid(e.to_string()))?;
    Ok(ConsistencyBundle {
        format: ticket_ledger::bundle::CONSISTENCY_FORMAT.into(),
        old_size: old,
        new_size: new,
        old_root: hash_text(&old_root),
        old_checkpoint: note_at(old),
        new_checkpoint,
        proof: proof.iter().map(hash_text).collect(),
    })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The event at this position is not the one recorded.
    Altered { position: i64 },
    /// The ledger recorded an event at this position; the store no longer has it.
    Removed { position: i64 },
    /// The store has an event at this position the ledger never recorded, among ones it did.
    Inserted { position: i64 },
    /// The event at this position is one the ledger recorded at another position.
    Reordered { position: i64, recorded_at_position: i64 },
    /// The stored tree at this size does not have the root its signed checkpoint states.
    CheckpointMismatch { size: u64 },
    /// A checkpoint whose signature does not verify with the public key.
    BadSignature { size: Option<u64>, reason: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Altered { position } => write!(f, "the event at position {position} was altered"),
            Self::Removed { position } => write!(f, "the event at position {position} was removed"),
            Self::Inserted { position } => write!(f, "an event was inserted at position {position}"),
            Self::Reordered { position, recorded_at_position } => write!(
                f,
                "events were reordered: the event at position {position} was recorded at position {recorded_at_position}"
            ),
            Self::CheckpointMismatch { size } => write!(
                f,
                "the ledger's tree of {size} events does not have the root its signed checkpoint states: the ledger \
                 itself was rewritten"
            ),
            Self::BadSignature { size, reason } => match size {
                Some(size) => write!(f, "the checkpoint of size {size} does not verify: {reason}"),
                None => write!(f, "a checkpoint does not verify: {reason}"),
            },
        }
    }
}

/// What [`verify`] did.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub events: u64,
    pub leaves: u64,
    pub checkpoints: u64,
    /// Events recorded after the ledger's last leaf (it has not reached them yet).
    pub not_yet_in_ledger: u64,
    /// Events `ticketd migrate` sealed in place, each as its PersonalDataSealed record lists.
    pub sealed_in_place: u64,
    /// Every difference, the first first.
    pub findings: Vec<Finding>,
}

/// Recomputes every leaf from the store's events, compares them with the ledger's leaves, and
/// checks the ledger's tree against every signed checkpoint (the database's and `extra`, e.g.
/// the copies mailed to the auditors). Findings name each difference by position.
pub async fn verify(
    store: &SharedStore,
    database: &Database,
    public_key: Option<&str>,
    extra: &[String],
    vault: Option<&ticket_vault::Vault>,
) -> Result<VerifyReport, LedgerError> {
    let mut report = VerifyReport::default();
    // Every signed checkpoint, opened with the public key.
    let mut signed: Vec<(u64, Hash)> = Vec::new();
    let stored = checkpoints(database).await?;
    for (size, root, note) in &stored {
        match public_key {
            Some(key) => match ticket_ledger::checkpoint::open(note, key) {
                Ok(opened) if opened.size == *size && opened.root == *root => signed.push((*size, *root)),
                Ok(_) => report.findings.push(Finding::BadSignature {
                    size: Some(*size),
                    reason: "its row does not match its signed note".into(),
                }),
                Err(e) => report.findings.push(Finding::BadSignature { size: Some(*size), reason: e.to_string() }),
            },
            None => signed.push((*size, *root)),
        }
    }
    for note in extra {
        match public_key.map(|key| ticket_ledger::checkpoint::open(note, key)) {
            Some(Ok(Checkpoint { size, root, .. })) => signed.push((size, root)),
            Some(Err(e)) => report.findings.push(Finding::BadSignature { size: None, reason: e.to_string() }),
            None => return Err(LedgerError::Invalid("checking a checkpoint file needs the public key".into())),
        }
    }
    signed.sort_by_key(|(size, _)| *size);
    report.checkpoints = signed.len() as u64;

    // The ledger's leaves, and the store's events recomputed, all at once.
    let (leaves, mut events) = match database {
        Database::Postgres(pool) => scan_postgres(pool).await?,
        Database::Sqlite { .. } => scan_sqlite(database).await?,
    };
    events.dedup_by_key(|event| event.0);
    report.leaves = leaves.len() as u64;
    report.events = events.len() as u64;
    report.findings.extend(compare(&leaves, &events, &mut report.not_yet_in_ledger));
    // The one rewrite there is: `ticketd migrate` sealing personal parts stored in the clear,
    // each listed by a PersonalDataSealed record (itself in the log, so in the ledger). With
    // the data key, the sealed event is opened again and must hash to the leaf recorded.
    let records = sealed_in_place(database).await?;
    if !records.is_empty() {
        let recorded: HashMap<i64, Hash> = leaves.iter().map(|(p, _, h)| (*p, *h)).collect();
        let now: HashMap<i64, (uuid::Uuid, Hash)> = events.iter().map(|(p, id, h)| (*p, (*id, *h))).collect();
        let mut kept = Vec::new();
        for finding in std::mem::take(&mut report.findings) {
            let Finding::Altered { position } = finding else {
                kept.push(finding);
                continue;
            };
            let listed = records.get(&position).is_some_and(|(id, before, after)| {
                recorded.get(&position) == Some(before) && now.get(&position) == Some(&(*id, *after))
            });
            let opens_to_recorded = match (listed, vault) {
                (false, _) => false,
                (true, None) => true,
                (true, Some(vault)) => {
                    let event = store.read_all(GlobalPosition(position - 1), 1).await?;
                    let opened = vault.open(event).await?;
                    match opened.first() {
                        // Erased since: only the record vouches for it.
                        Some(e) if e.payload.get().contains(ticket_domain::event::ERASED) => true,
                        Some(e) => Some(&ticket_ledger::leaf::leaf_hash(e)) == recorded.get(&position),
                        None => false,
                    }
                }
            };
            if opens_to_recorded {
                report.sealed_in_place += 1;
            } else {
                kept.push(Finding::Altered { position });
            }
        }
        report.findings = kept;
    }

    // The ledger's tree against every signed checkpoint.
    let mut frontier = Frontier::new();
    let mut checks = signed.iter().peekable();
    while let Some((size, _)) = checks.peek()
        && *size == 0
    {
        checks.next();
    }
    for leaf in &leaves {
        frontier.push(leaf.2);
        while let Some((size, root)) = checks.peek()
            && *size == frontier.size()
        {
            if frontier.root() != *root {
                report.findings.push(Finding::CheckpointMismatch { size: *size });
            }
            checks.next();
        }
    }
    for (size, _) in checks {
        report.findings.push(Finding::CheckpointMismatch { size: *size });
    }
    report.findings.sort_by_key(|finding| match finding {
        Finding::Altered { position }
        | Finding::Removed { position }
        | Finding::Inserted { position }
        | Finding::Reordered { position, .. } => (1, *position as i128),
        Finding::CheckpointMismatch { size } => (0, *size as i128),
        Finding::BadSignature { .. } => (0, -1),
    });
    Ok(report)
}

/// The differences between the ledger's leaves and the store's events (both `(position, event
/// id, leaf hash)` in position order), by position:
/// - same position, same event, other content: altered;
/// - an event the ledger recorded at another position: reordered;
/// - an event the ledger never recorded, before its last leaf: inserted (also where it took
///   the place of an event that is still there, moved on);
/// - an event the ledger recorded that is nowhere in the store: removed (or, when another
///   unknown event took its place, altered).
fn compare(leaves: &[(i64, uuid::Uuid, Hash)], events: &[(i64, uuid::Uuid, Hash)], beyond: &mut u64) -> Vec<Finding> {
    // The usual answer first, without maps: every leaf's event in its place, then only events
    // after the last leaf.
    let aligned = events.len() >= leaves.len()
        && leaves.iter().zip(events).all(|(leaf, event)| leaf.0 == event.0 && leaf.2 == event.2)
        && events[leaves.len()..].iter().all(|event| event.0 > leaves.last().map_or(0, |leaf| leaf.0));
    if aligned {
        *beyond += (events.len() - leaves.len()) as u64;
        return Vec::new();
    }
    let recorded_at: HashMap<i64, (uuid::Uuid, Hash)> = leaves.iter().map(|(p, id, h)| (*p, (*id, *h))).collect();
    let recorded_position: HashMap<uuid::Uuid, i64> = leaves.iter().map(|(p, id, _)| (*id, *p)).collect();
    let present: HashSet<uuid::Uuid> = events.iter().map(|(_, id, _)| *id).collect();
    let positions: HashSet<i64> = events.iter().map(|(p, _, _)| *p).collect();
    let last_recorded = leaves.last().map_or(0, |leaf| leaf.0);
    let mut findings = Vec::new();
    for (position, id, hash) in events {
        let position = *position;
        match recorded_at.get(&position) {
            Some((_, recorded)) if recorded == hash => {}
            Some((recorded_id, _)) if recorded_id == id => findings.push(Finding::Altered { position }),
            found => match recorded_position.get(id) {
                Some(elsewhere) => findings.push(Finding::Reordered { position, recorded_at_position: *elsewhere }),
                None => match found {
                    Some((recorded_id, _)) if !present.contains(recorded_id) => {
                        findings.push(Finding::Altered { position })
                    }
                    Some(_) => findings.push(Finding::Inserted { position }),
                    None if position < last_recorded => findings.push(Finding::Inserted { position }),
                    None => *beyond += 1,
                },
            },
        }
    }
    for (position, id, _) in leaves {
        if !present.contains(id) && !positions.contains(position) {
            findings.push(Finding::Removed { position: *position });
        }
    }
    findings
}

/// What `ticketd migrate` recorded it sealed in place: position → (event id, leaf before,
/// leaf after).
pub async fn sealed_in_place(database: &Database) -> Result<HashMap<i64, (uuid::Uuid, Hash, Hash)>, LedgerError> {
    let sql = "SELECT CAST(payload AS TEXT) FROM events WHERE event_type = 'PersonalDataSealed'";
    let payloads: Vec<String> = match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_all(read).await?,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
    };
    let mut records = HashMap::new();
    for payload in payloads {
        let record: ticket_domain::event::PersonalDataSealed = serde_json::from_str(&payload)
            .map_err(|e| LedgerError::Mismatch(format!("a PersonalDataSealed record does not read: {e}")))?;
        for sealed in record.events {
            let (Ok(before), Ok(after)) =
                (ticket_ledger::parse_hash(&sealed.leaf_before), ticket_ledger::parse_hash(&sealed.leaf_after))
            else {
                return Err(LedgerError::Mismatch(format!(
                    "the record of position {} has no valid leaves",
                    sealed.position
                )));
            };
            records.insert(sealed.position, (sealed.event_id, before, after));
        }
    }
    Ok(records)
}

type Leaves = Vec<(i64, uuid::Uuid, Hash)>;

/// SQLite: the leaves, and the events in two halves (split at the ledger's middle leaf), each
/// page hashed on every core while the next is read.
async fn scan_sqlite(database: &Database) -> Result<(Leaves, Leaves), LedgerError> {
    let size = size(database).await?;
    let middle: Option<i64> = match database {
        Database::Sqlite { read, .. } if size >= 20_000 => Some(
            sqlx::query_scalar("SELECT position FROM ledger_leaves WHERE leaf_index = ?1")
                .bind((size / 2) as i64)
                .fetch_one(read)
                .await?,
        ),
        _ => None,
    };
    let leaves_task = {
        let database = database.clone();
        tokio::spawn(async move { sqlite_leaves(&database).await })
    };
    let first_half = tokio::spawn(read_range(database.clone(), GlobalPosition::START, middle));
    let mut events = match middle {
        Some(middle) => {
            let second = read_range(database.clone(), GlobalPosition(middle), None).await?;
            let mut first = first_half.await.map_err(|e| LedgerError::Invalid(e.to_string()))??;
            first.extend(second);
            first
        }
        None => first_half.await.map_err(|e| LedgerError::Invalid(e.to_string()))??,
    };
    events.sort_unstable_by_key(|event| event.0);
    let leaves = leaves_task.await.map_err(|e| LedgerError::Invalid(e.to_string()))??;
    Ok((leaves, events))
}

/// PostgreSQL: the leaves and the events in **one snapshot** (exported by the first
/// connection and imported by the others, as `pg_dump --jobs` does), so the two agree exactly
/// whatever commits meanwhile. The events are read in two halves of the table's pages at once
/// (TID range scans: in the table's order, no index), each as binary `COPY` hashed by its own
/// task as its rows stream in, with no page queries and no envelope built; sorted by position
/// after. Its connections are closed after, never handed back to the pool.
async fn scan_postgres(pool: &sqlx::PgPool) -> Result<(Leaves, Leaves), LedgerError> {
    let open = |export: bool, snapshot: Option<String>| async move {
        let mut connection = pool.acquire().await?;
        // Closed after, never back to the pool: an error may leave it inside the snapshot's
        // transaction or in the middle of a COPY.
        connection.close_on_drop();
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *connection).await?;
        if let Some(snapshot) = snapshot {
            // The server's own identifier (hex digits and dashes) quoted as a literal.
            let literal = snapshot.replace('\'', "''");
            sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{literal}'")).execute(&mut *connection).await?;
        }
        // A connection waits while the others stream: it is not idle for the server's timeout.
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0").execute(&mut *connection).await?;
        let exported = match export {
            true => {
                Some(sqlx::query_scalar::<_, String>("SELECT pg_export_snapshot()").fetch_one(&mut *connection).await?)
            }
            false => None,
        };
        Ok::<_, LedgerError>((connection, exported))
    };
    let (mut leaves_connection, snapshot) = open(true, None).await?;
    let (first, _) = open(false, snapshot.clone()).await?;
    let (second, _) = open(false, snapshot).await?;
    let pages: i64 = sqlx::query_scalar("SELECT pg_relation_size('events') / current_setting('block_size')::bigint")
        .fetch_one(&mut *leaves_connection)
        .await?;
    let middle = pages / 2;
    let mut halves = [
        tokio::spawn(hash_rows(first, format!("WHERE ctid < '({middle},0)'::tid"))),
        tokio::spawn(hash_rows(second, format!("WHERE ctid >= '({middle},0)'::tid"))),
    ];
    let leaves = async {
        let mut leaves = Vec::new();
        let mut rows = sqlx::query_as::<_, (i64, i64, uuid::Uuid, Vec<u8>)>(
            "SELECT leaf_index, position, event_id, leaf_hash FROM ledger_leaves ORDER BY leaf_index",
        )
        .fetch(&mut *leaves_connection);
        while let Some((index, position, id, hash)) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            if index != leaves.len() as i64 {
                return Err(LedgerError::Mismatch(format!("the ledger's leaves have a gap before index {index}")));
            }
            let hash = hash_from_bytes(&hash)
                .ok_or_else(|| LedgerError::Mismatch(format!("the leaf of position {position} is not 32 bytes")))?;
            leaves.push((position, id, hash));
        }
        drop(rows);
        sqlx::query("COMMIT").execute(&mut *leaves_connection).await?;
        Ok(leaves)
    }
    .await;
    let leaves = match leaves {
        Ok(leaves) => leaves,
        Err(error) => {
            halves.iter().for_each(|half| half.abort());
            return Err(error);
        }
    };
    let mut events = Vec::new();
    for half in &mut halves {
        match half.await.map_err(|e| LedgerError::Invalid(e.to_string())).and_then(|read| read) {
            Ok(read) => events.extend(read),
            Err(error) => {
                // The other half stops too (its connection closes with it).
                halves.iter().for_each(|half| half.abort());
                return Err(error);
            }
        }
    }
    events.sort_unstable_by_key(|event| event.0);
    Ok((leaves, events))
}

/// The events a condition on `events` selects, each hashed as its row arrives (unordered),
/// on a connection inside the verify's snapshot; the transaction ends with the rows. They come
/// as binary `COPY` (`crate::pg_copy`): the same bytes as a result's rows, without a decoded
/// row and a type check per column on this side.
async fn hash_rows(
    mut connection: sqlx::pool::PoolConnection<sqlx::Postgres>,
    condition: String,
) -> Result<Leaves, LedgerError> {
    use crate::pg_copy::{self, CopyReader};
    let sql = format!(
        "COPY (SELECT position, stream_id, version, event_id, event_type, schema_version, occurred_at, recorded_at, \
         actor::text, correlation_id, causation_id, payload::text FROM events {condition}) TO STDOUT (FORMAT binary)"
    );
    let mut hashed = Vec::new();
    let mut scratch = Vec::with_capacity(4096);
    let mut reader = CopyReader::default();
    {
        let mut chunks = connection.copy_out_raw(&sql).await?;
        while let Some(chunk) = futures_util::TryStreamExt::try_next(&mut chunks).await? {
            reader.feed(&chunk, |fields| {
                let [
                    position,
                    stream,
                    version,
                    id,
                    event_type,
                    schema,
                    occurred,
                    recorded,
                    actor,
                    correlation,
                    causation,
                    payload,
                ] = fields
                else {
                    return Err(LedgerError::Invalid(format!("an event row of {} columns", fields.len())));
                };
                let position = pg_copy::int8(*position, "position")?;
                let parts = (|| {
                    Ok::<_, pg_copy::CopyError>(ticket_ledger::leaf::StoredParts {
                        position,
                        stream: pg_copy::text(*stream, "the stream")?,
                        version: pg_copy::int8(*version, "the version")? as u64,
                        event_id: pg_copy::uuid(*id, "the event id")?,
                        event_type: pg_copy::text(*event_type, "the type")?,
                        schema_version: pg_copy::int4(*schema, "the schema version")? as u32,
                        occurred_at: pg_copy::timestamptz(*occurred, "the time")?,
                        recorded_at: pg_copy::timestamptz(*recorded, "the time recorded")?,
                        actor: pg_copy::text(*actor, "the actor")?,
                        correlation_id: pg_copy::uuid(*correlation, "the correlation id")?,
                        causation_id: pg_copy::uuid_or_null(*causation, "the causation id")?,
                        payload: pg_copy::text(*payload, "the payload")?,
                    })
                })()
                .map_err(|e| LedgerError::Invalid(format!("reading the event at position {position}: {e}")))?;
                hashed.push((position, parts.event_id, parts.leaf_hash(&mut scratch)));
                Ok(())
            })?;
        }
    }
    reader.finish()?;
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(hashed)
}

/// SQLite: every leaf, (position, event id, leaf hash), in order. One text a page,
/// `index,position,event id,hash;…` in hex: sqlx hands each SQLite row over separately, at
/// ~5 µs a row. Put in order here: an aggregate's order is SQLite's to choose, and an ORDER BY
/// inside it would sort again what the index gave.
async fn sqlite_leaves(database: &Database) -> Result<Leaves, LedgerError> {
    const PAGE: i64 = 50_000;
    let Database::Sqlite { read, .. } = database else {
        return Err(LedgerError::Invalid("pages of leaves are SQLite's reading".into()));
    };
    let mut leaves = Vec::new();
    loop {
        let from = leaves.len() as i64;
        let page: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(leaf_index || ',' || position || ',' || hex(event_id) || ',' || hex(leaf_hash), ';') \
             FROM (SELECT * FROM ledger_leaves WHERE leaf_index >= ?1 ORDER BY leaf_index LIMIT ?2)",
        )
        .bind(from)
        .bind(PAGE)
        .fetch_one(read)
        .await?;
        let mut rows = page
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|row| !row.is_empty())
            .map(|row| {
                let bad = || LedgerError::Mismatch(format!("the leaf row '{row}' is malformed"));
                let mut fields = row.split(',');
                let mut next = || fields.next().ok_or_else(bad);
                let index: i64 = next()?.parse().map_err(|_| bad())?;
                let position: i64 = next()?.parse().map_err(|_| bad())?;
                let id = uuid::Uuid::try_parse(next()?).map_err(|_| bad())?;
                let hash = hex::decode(next()?).ok().and_then(|bytes| hash_from_bytes(&bytes)).ok_or_else(bad)?;
                Ok((index, (position, id, hash)))
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        rows.sort_unstable_by_key(|(index, _)| *index);
        if rows.iter().enumerate().any(|(i, (index, _))| *index != from + i as i64) {
            return Err(LedgerError::Mismatch(format!("the ledger's leaves from index {from} on have a gap")));
        }
        let done = (rows.len() as i64) < PAGE;
        leaves.extend(rows.into_iter().map(|(_, row)| row));
        if done {
            return Ok(leaves);
        }
    }
}

/// The events after `after` up to `until` (inclusive; all when `None`), hashed: each page
/// hashed while the next is read.
async fn read_range(database: Database, after: GlobalPosition, until: Option<i64>) -> Result<Leaves, LedgerError> {
    let mut events = Vec::new();
    let mut next = tokio::spawn(read_and_hash(database.clone(), after));
    loop {
        let mut page = (&mut next).await.map_err(|e| LedgerError::Invalid(e.to_string()))??;
        // The page's rows in SQLite's order: it ends at its largest position.
        let Some(last) = page.iter().map(|e| e.0).max() else { break };
        let done = until.is_some_and(|until| last >= until);
        if !done {
            next = tokio::spawn(read_and_hash(database.clone(), GlobalPosition(last)));
        }
        if let Some(until) = until {
            page.retain(|e| e.0 <= until);
        }
        events.extend(page);
        if done {
            break;
        }
    }
    Ok(events)
}

/// SQLite: the events after `after` as stored, as one JSON document a page of 5,000 built by
/// SQLite (sqlx hands each SQLite row over at ~5 µs, more than the hashing). Each row is
/// `[position, event id, stream, version, type, schema version, occurred, recorded, actor,
/// correlation, causation, payload]`, the actor and the payload as their stored text.
async fn read_page(database: &Database, after: GlobalPosition) -> Result<String, LedgerError> {
    const PAGE: i64 = 5_000;
    let Database::Sqlite { read, .. } = database else {
        return Err(LedgerError::Invalid("pages of JSON are SQLite's reading".into()));
    };
    let text: Option<String> = sqlx::query_scalar(
        "SELECT '[' || group_concat(format('[%d,\"%s\",%s,%d,%s,%d,%d,%d,%s,\"%s\",%s,%s]', position, hex(event_id), \
         json_quote(stream_id), version, json_quote(event_type), schema_version, occurred_at, recorded_at, actor, \
         hex(correlation_id), CASE WHEN causation_id IS NULL THEN 'null' ELSE '\"' || hex(causation_id) || '\"' END, \
         payload), ',') || ']' \
         FROM (SELECT * FROM events WHERE position > ?1 ORDER BY position LIMIT ?2)",
    )
    .bind(after.0)
    .bind(PAGE)
    .fetch_one(read)
    .await?;
    Ok(text.unwrap_or_else(|| "[]".into()))
}

/// One page of the global order, each event's leaf hash computed on every core.
async fn read_and_hash(database: Database, after: GlobalPosition) -> Result<Leaves, LedgerError> {
    let page = read_page(&database, after).await?;
    tokio::task::spawn_blocking(move || hash_page(&page, after))
        .await
        .map_err(|e| LedgerError::Invalid(e.to_string()))?
}

/// The leaf hashes of a page [`read_page`] read, computed on every core, from the borrowed
/// fields (no envelope built).
fn hash_page(text: &str, after: GlobalPosition) -> Result<Leaves, LedgerError> {
    use serde_json::value::RawValue;
    type Row<'a> =
        (i64, &'a str, &'a str, u64, &'a str, u32, i64, i64, &'a RawValue, &'a str, Option<&'a str>, &'a RawValue);
    let rows: Vec<Row> = serde_json::from_str(text)
        .map_err(|e| LedgerError::Mismatch(format!("reading the events after position {}: {e}", after.0)))?;
    let hash = |rows: &[Row]| -> Result<Leaves, LedgerError> {
        let mut scratch = Vec::with_capacity(4096);
        rows.iter()
            .map(
                |&(
                    position,
                    id,
                    stream,
                    version,
                    event_type,
                    schema_version,
                    occurred,
                    recorded,
                    actor,
                    correlation,
                    causation,
                    payload,
                )| {
                    let invalid = |what: &str| {
                        LedgerError::Mismatch(format!("the event at position {position} has an invalid {what}"))
                    };
                    let uuid = |text: &str, what: &str| uuid::Uuid::try_parse(text).map_err(|_| invalid(what));
                    let instant = |micros: i64| DateTime::from_timestamp_micros(micros).ok_or_else(|| invalid("time"));
                    let parts = ticket_ledger::leaf::StoredParts {
                        position,
                        stream,
                        version,
                        event_id: uuid(id, "event id")?,
                        event_type,
                        schema_version,
                        occurred_at: instant(occurred)?,
                        recorded_at: instant(recorded)?,
                        actor: actor.get(),
                        correlation_id: uuid(correlation, "correlation id")?,
                        causation_id: causation.map(|c| uuid(c, "causation id")).transpose()?,
                        payload: payload.get(),
                    };
                    Ok((position, parts.event_id, parts.leaf_hash(&mut scratch)))
                },
            )
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if rows.len() < 256 || threads == 1 {
        return hash(&rows);
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = rows.chunks(chunk).map(|part| scope.spawn(move || hash(part))).collect();
        let mut hashed = Vec::with_capacity(rows.len());
        for part in parts {
            hashed.extend(part.join().expect("hashing does not panic")?);
        }
        Ok(hashed)
    })
}

/// The leaf hashes of `events`, computed on every core.
fn hash_all(events: &[RecordedEvent]) -> Vec<Hash> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if events.len() < 256 || threads == 1 {
        return events.iter().map(ticket_ledger::leaf::leaf_hash).collect();
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(ticket_ledger::leaf::leaf_hash).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|part| part.join().expect("hashing does not panic")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(position: i64, id: u128, content: &str) -> (i64, uuid::Uuid, Hash) {
        (position, uuid::Uuid::from_u128(id), ticket_ledger::tree::leaf_of(content.as_bytes()))
    }

    #[test]
    fn each_kind_of_tampering_is_named_by_its_position() {
        let recorded: Vec<_> = (1..=6).map(|i| row(i * 10, i as u128, &format!("event {i}"))).collect();
        let check = |events: Vec<(i64, uuid::Uuid, Hash)>| {
            let mut beyond = 0;
            let mut found = compare(&recorded, &events, &mut beyond);
            found.sort_by_key(|f| format!("{f}"));
            (found, beyond)
        };
        assert_eq!(check(recorded.clone()), (vec![], 0));
        let mut more = recorded.clone();
        more.push(row(70, 7, "event 7"));
        assert_eq!(check(more), (vec![], 1), "an event after the last leaf is not in the ledger yet");

        let mut altered = recorded.clone();
        altered[1].2 = ticket_ledger::tree::leaf_of(b"changed");
        assert_eq!(check(altered).0, vec![Finding::Altered { position: 20 }]);

        let mut removed = recorded.clone();
        removed.remove(2);
        assert_eq!(check(removed).0, vec![Finding::Removed { position: 30 }]);

        let mut swapped = recorded.clone();
        let (a, b) = (swapped[3], swapped[4]);
        swapped[3] = (a.0, b.1, ticket_ledger::tree::leaf_of(b"event 5 at 40"));
        swapped[4] = (b.0, a.1, ticket_ledger::tree::leaf_of(b"event 4 at 50"));
        assert_eq!(
            check(swapped).0,
            vec![
                Finding::Reordered { position: 40, recorded_at_position: 50 },
                Finding::Reordered { position: 50, recorded_at_position: 40 },
            ]
        );

        let mut inserted = recorded.clone();
        inserted.insert(2, row(25, 99, "forged"));
        assert_eq!(check(inserted).0, vec![Finding::Inserted { position: 25 }]);

        let mut replaced = recorded.clone();
        replaced[0] = row(10, 98, "forged in its place");
        assert_eq!(check(replaced).0, vec![Finding::Altered { position: 10 }]);
    }
}
