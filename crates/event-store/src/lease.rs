//! Job leases: one leader per background job among the instances that share a PostgreSQL store.
//!
//! A lease is a row of `job_leases` (job, holder, fencing epoch, expiry). Expiry is judged by
//! the database's clock, never an instance's. The leader renews it every sixth of its time to
//! live (and stands down when none was confirmed for two thirds of it); a standby tries to take it every [`STANDBY_POLL`] and succeeds once it has
//! expired (a crash: within the time to live and one poll) or been released (a graceful
//! shutdown: within one poll). Each take-over increments the epoch.
//!
//! Fencing: every batch a leader writes calls [`Fence::check_in`] inside its own transaction.
//! It reads the lease row `FOR KEY SHARE`: the batch goes on only while this holder and epoch
//! still hold an unexpired lease, and a take-over (which locks the row `FOR UPDATE` first)
//! waits until the batch has committed or rolled back. So a leader that was paused past its expiry cannot
//! write after another took over. No session-level advisory lock is held across transactions:
//! those break behind a transaction-pooling PgBouncer and outlive a killed host's connection.
//!
//! SQLite is one instance (`serve` takes the file's instance lock), so there every job is
//! simply led by that instance and nothing is written.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgConnection;
use tokio::sync::watch;

use crate::{Database, StoreError};

/// The host's name (the holder's first part by default).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// How often a standby tries to take a lease.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);
/// A lease's time to live by default: a crashed leader's jobs move within this and one poll.
pub const TTL_DEFAULT: Duration = Duration::from_secs(10);

/// This instance's side of the leases: who it is, and for how long a lease it takes lasts.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    database: Database,
    holder: String,
    /// The holder's first part was given (`--instance-name`), not the host's name: then a
    /// holder of the same name whose process is gone is an earlier run of this instance.
    named: bool,
    ttl: Duration,
    /// The jobs this instance leads now, with their epochs (for `/readyz` and `/metrics`).
    held: std::sync::Mutex<std::collections::BTreeMap<&'static str, i64>>,
}

/// A lease's row, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub job: String,
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it expires by the database's clock (negative: expired or released).
    pub expires_in_ms: i64,
}

impl Leases {
    /// `holder` names this instance uniquely (host, process and a random part).
    /// `named`: the holder's first part is an instance name given by the operator (unique to
    /// the instance, as a pod's name), not the host's.
    pub fn new(database: Database, holder: String, named: bool, ttl: Duration) -> Self {
        let ttl = ttl.max(Duration::from_secs(1));
        Self { inner: Arc::new(Inner { database, holder, named, ttl, held: Default::default() }) }
    }

    /// A holder name unique to this process: `instance:pid:random`, where `instance` names
    /// the host (or pod) it runs on (`None`: the host name).
    pub fn unique_holder(instance: Option<&str>) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let instance = instance.map_or_else(host_name, |i| i.replace(':', "_"));
        format!("{instance}:{}:{}", std::process::id(), &random[..8])
    }

    /// Whether `holder` is an earlier, crashed run of this very instance: the same given
    /// instance name (`--instance-name`, unique per instance) and a process that is gone (its
    /// pid no longer exists, or is this process's own after a container restart). Its leases
    /// are taken over at once rather than after their expiry, so an instance restarted after a
    /// crash resumes its jobs without waiting. Without a given name (the host's name, which
    /// containers may share) nothing is ever taken for dead: leases expire.
    fn is_dead_local(&self, holder: &str) -> bool {
        if !self.inner.named || holder == self.inner.holder {
            return false;
        }
        let mut parts = holder.rsplitn(3, ':');
        let (Some(_random), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else { return false };
        let Ok(pid) = pid.parse::<u32>() else { return false };
        let own_host = self.inner.holder.rsplitn(3, ':').nth(2).unwrap_or_default();
        host == own_host && (pid == std::process::id() || !std::path::Path::new(&format!("/proc/{pid}")).exists())
    }

    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The jobs this instance leads, with their epochs.
    pub fn held(&self) -> Vec<(&'static str, i64)> {
        self.inner.held.lock().expect("held leases").iter().map(|(j, e)| (*j, *e)).collect()
    }

    /// Every lease row (PostgreSQL; none on SQLite, where this instance leads every job).
    pub async fn rows(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let Database::Postgres(pool) = &self.inner.database else { return Ok(Vec::new()) };
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT job, holder, epoch, (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint \
             FROM job_leases ORDER BY job",
        )
        .fetch_all(pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(job, holder, epoch, expires_in_ms)| LeaseRow { job, holder, epoch, expires_in_ms })
            .collect())
    }

    /// Takes `job`'s lease if it is free (expired or released), or held by a process of this
    /// host that is gone; the epoch.
    async fn try_take(&self, job: &'static str) -> Result<Option<i64>, StoreError> {
        let Database::Postgres(pool) = &self.inner.database else { return Ok(Some(1)) };
        let ttl_ms = self.inner.ttl.as_millis() as i64;
        // Cheap first: most tries find the lease held and alive.
        let seen: Option<(String, bool)> =
            sqlx::query_as("SELECT holder, expires_at < clock_timestamp() FROM job_leases WHERE job = $1")
                .bind(job)
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from_sqlx)?;
        let takeable =
            |holder: &str, expired: bool| expired || holder == self.inner.holder || self.is_dead_local(holder);
        if seen.as_ref().is_some_and(|(holder, expired)| !takeable(holder, *expired)) {
            return Ok(None);
        }
        // The take-over locks the row FOR UPDATE: it waits for a batch of the old leader in
        // flight (which holds it FOR KEY SHARE, see `Fence::check_in`), so that batch's writes
        // land before the epoch moves; but not for long (a frozen leader's connection).
        // `clock_timestamp()`, not `now()`: the wait must not shorten the new lease.
        let mut transaction = pool.begin().await.map_err(StoreError::from_sqlx)?;
        sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *transaction).await.map_err(StoreError::from_sqlx)?;
        let current: Option<(String, bool)> =
            sqlx::query_as("SELECT holder, expires_at < clock_timestamp() FROM job_leases WHERE job = $1 FOR UPDATE")
                .bind(job)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(StoreError::from_sqlx)?;
        let epoch: Option<i64> = match current {
            Some((holder, expired)) if !takeable(&holder, expired) => None,
            Some((holder, expired)) => {
                if !expired && holder != self.inner.holder {
                    tracing::info!(job, from = %holder, "taking the job back from a crashed run of this instance");
                }
                sqlx::query_scalar(
                    "UPDATE job_leases SET holder = $2, epoch = epoch + 1, \
                     expires_at = clock_timestamp() + $3 * interval '1 millisecond', renewed_at = clock_timestamp() \
                     WHERE job = $1 RETURNING epoch",
                )
                .bind(job)
                .bind(&self.inner.holder)
                .bind(ttl_ms)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(StoreError::from_sqlx)?
            }
            None => sqlx::query_scalar(
                "INSERT INTO job_leases (job, holder, epoch, expires_at, renewed_at) \
                 VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond', clock_timestamp()) \
                 ON CONFLICT (job) DO NOTHING RETURNING epoch",
            )
            .bind(job)
            .bind(&self.inner.holder)
            .bind(ttl_ms)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(StoreError::from_sqlx)?,
        };
        transaction.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(epoch)
    }

    /// Waits as a standby until this instance leads `job`; `None` when `stop` fires first.
    /// Database trouble while waiting is logged and waited out.
    pub async fn lead(&self, job: &'static str, stop: &tokio_util::sync::CancellationToken) -> Option<Leadership> {
        let mut announced = false;
        loop {
            match self.try_take(job).await {
                Ok(Some(epoch)) => {
                    tracing::info!(job, epoch, holder = %self.inner.holder, "leading the job");
                    return Some(self.leadership(job, epoch));
                }
                Ok(None) => {
                    if !announced {
                        tracing::info!(job, "standing by: another instance leads the job");
                        announced = true;
                    }
                }
                Err(error) => tracing::warn!(%error, job, "could not try the job's lease; trying again"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(STANDBY_POLL) => {}
            }
        }
    }

    /// Runs a background job only while this instance leads it, until `shutdown`: `body` gets
    /// a token that is cancelled when the lease is lost or `shutdown` fires, and must return
    /// soon after (between two units of work, so none is cut in half). Then this instance
    /// stands by again, or releases the lease and returns on shutdown.
    pub async fn run_led<F, Fut>(&self, job: &'static str, shutdown: tokio_util::sync::CancellationToken, body: F)
    where
        F: Fn(tokio_util::sync::CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.run_led_fenced(job, shutdown, |stop, _| body(stop)).await
    }

    /// [`Self::run_led`] for a job that fences its own writes: `body` also gets the
    /// leadership's [`Fence`] to check in with inside its transactions.
    pub async fn run_led_fenced<F, Fut>(
        &self,
        job: &'static str,
        shutdown: tokio_util::sync::CancellationToken,
        body: F,
    ) where
        F: Fn(tokio_util::sync::CancellationToken, Fence) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        loop {
            let Some(leadership) = self.lead(job, &shutdown).await else { return };
            let stop = shutdown.child_token();
            let work = body(stop.clone(), leadership.fence());
            tokio::pin!(work);
            tokio::select! {
                _ = &mut work => {}
                _ = leadership.lost() => {
                    stop.cancel();
                    work.await;
                }
            }
            if shutdown.is_cancelled() {
                leadership.release().await;
                return;
            }
            if !leadership.is_lost() {
                // The job ended on its own: give it back rather than hold it idle.
                leadership.release().await;
                return;
            }
        }
    }

    fn leadership(&self, job: &'static str, epoch: i64) -> Leadership {
        self.inner.held.lock().expect("held leases").insert(job, epoch);
        let (lost_tx, lost) = watch::channel(false);
        let renewer = match &self.inner.database {
            Database::Postgres(pool) => {
                let (pool, holder, ttl) = (pool.clone(), self.inner.holder.clone(), self.inner.ttl);
                let leases = self.clone();
                Some(tokio::spawn(async move {
                    // The lease is ours until one time to live after the last renewal that was
                    // confirmed was sent (by our own clock). Renewals go every sixth of it,
                    // each given at most a sixth to answer (a failed one is tried again soon);
                    // without one confirmed for two thirds this leader stands down, a third
                    // before the database lets another take over, so the jobs without a fence
                    // stop in time too.
                    let mut confirmed = tokio::time::Instant::now();
                    loop {
                        tokio::time::sleep(ttl / 6).await;
                        let sent = tokio::time::Instant::now();
                        let left = (confirmed + ttl * 2 / 3).saturating_duration_since(sent);
                        let renewed = tokio::time::timeout(
                            left.min(ttl / 6).max(Duration::from_millis(1)),
                            sqlx::query(
                                "UPDATE job_leases SET expires_at = now() + $4 * interval '1 millisecond', \
                                 renewed_at = now() WHERE job = $1 AND holder = $2 AND epoch = $3",
                            )
                            .bind(job)
                            .bind(&holder)
                            .bind(epoch)
                            .bind(ttl.as_millis() as i64)
                            .execute(&pool),
                        )
                        .await;
                        match renewed {
                            Ok(Ok(done)) if done.rows_affected() == 1 => confirmed = sent,
                            Ok(Ok(_)) => {
                                tracing::warn!(job, epoch, "the job's lease was taken over: standing down");
                                break;
                            }
                            Ok(Err(error)) => tracing::warn!(%error, job, "renewing the job's lease failed"),
                            Err(_) => tracing::warn!(job, "renewing the job's lease did not answer in time"),
                        }
                        if confirmed.elapsed() >= ttl * 2 / 3 {
                            tracing::warn!(job, epoch, "the job's lease could not be renewed in time: standing down");
                            break;
                        }
                    }
                    leases.forget(job, epoch);
                    let _ = lost_tx.send(true);
                }))
            }
            Database::Sqlite { .. } => {
                // Kept alive so `lost` never fires.
                std::mem::forget(lost_tx);
                None
            }
        };
        Leadership { leases: self.clone(), job, epoch, lost, renewer }
    }

    fn forget(&self, job: &'static str, epoch: i64) {
        let mut held = self.inner.held.lock().expect("held leases");
        if held.get(job) == Some(&epoch) {
            held.remove(job);
        }
    }
}

/// This instance leads a job while it holds this (and its lease has not been lost).
pub struct Leadership {
    leases: Leases,
    job: &'static str,
    epoch: i64,
    lost: watch::Receiver<bool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// The job's lease is no longer this instance's.
#[derive(Debug, thiserror::Error)]
#[error("the lease of job '{job}' (epoch {epoch}) is no longer held by this instance")]
pub struct LeaseLost {
    pub job: &'static str,
    pub epoch: i64,
}

impl Leadership {
    pub fn job(&self) -> &'static str {
        self.job
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost (never, on SQLite).
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// What a batch checks its right to write by (cheap to clone into a batch's task).
    pub fn fence(&self) -> Fence {
        Fence { job: self.job, holder: self.leases.inner.holder.clone().into(), epoch: self.epoch }
    }

    /// Gives the lease up at once (a graceful shutdown): a standby takes it on its next try.
    pub async fn release(mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        self.leases.forget(self.job, self.epoch);
        if let Database::Postgres(pool) = &self.leases.inner.database {
            let released = sqlx::query(
                "UPDATE job_leases SET expires_at = now() - interval '1 millisecond' \
                 WHERE job = $1 AND holder = $2 AND epoch = $3",
            )
            .bind(self.job)
            .bind(self.leases.holder())
            .bind(self.epoch)
            .execute(pool)
            .await;
            match released {
                Ok(_) => tracing::info!(job = self.job, epoch = self.epoch, "released the job's lease"),
                Err(error) => tracing::warn!(%error, job = self.job, "could not release the job's lease; it expires"),
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
            self.leases.forget(self.job, self.epoch);
        }
    }
}

/// A leader's right to write: its job, holder and epoch.
#[derive(Debug, Clone)]
pub struct Fence {
    job: &'static str,
    holder: Arc<str>,
    epoch: i64,
}

impl Fence {
    /// Inside the transaction of a batch this leader writes: fails unless the lease is still
    /// this holder's at this epoch and unexpired, and makes a take-over (which locks the row
    /// FOR UPDATE) wait for the transaction's end. `FOR KEY SHARE`, so the leader's own
    /// renewals (no-key updates) never wait for its batches. Call it before the batch's writes.
    pub async fn check_in(&self, connection: &mut PgConnection) -> Result<(), CheckError> {
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM job_leases WHERE job = $1 AND holder = $2 AND epoch = $3 AND expires_at > now() FOR KEY SHARE",
        )
        .bind(self.job)
        .bind(&*self.holder)
        .bind(self.epoch)
        .fetch_optional(connection)
        .await
        .map_err(|e| CheckError::Store(StoreError::from_sqlx(e)))?;
        match held {
            Some(_) => Ok(()),
            None => Err(CheckError::Lost(LeaseLost { job: self.job, epoch: self.epoch })),
        }
    }
}

/// Why a batch may not be written under a lease.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Lost(#[from] LeaseLost),
    #[error(transparent)]
    Store(StoreError),
}
