//! The outbox's tables: the `mail_outbox` projection that enqueues, and the queries the
//! dispatcher and the operators use.
//!
//! Enqueueing is a projection, so a mail is enqueued in the same transaction that moves the
//! projection's checkpoint past its event: every event enqueues its mails exactly once, across
//! crashes. The projection is never rebuilt (that would send old mail again); its checkpoint
//! starts at the end of the log as it was when mail was installed (migration 3001).

use std::sync::{Arc, Mutex};

use base64::Engine;
use event_store::{Database, RecordedEvent, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::TicketId;
use ticket_projections::{Projection, Transaction};

use crate::templates::MailKind;

/// Runs one statement on whichever database: `$pool` is the SQLite writer or the PostgreSQL
/// pool (the statements use `$n` parameters, which both understand).
macro_rules! on_database {
    ($database:expr, |$pool:ident| $body:expr) => {
        match $database {
            Database::Sqlite { write, .. } => {
                let $pool = write;
                $body
            }
            Database::Postgres(pool) => {
                let $pool = pool;
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_database;

pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let result = on_database!(database, |pool| {
        let migrator = match database {
            Database::Sqlite { .. } => sqlx::migrate!("./migrations/sqlite"),
            Database::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        };
        event_store::migrator(migrator).run(pool).await
    });
    result.map_err(|e| StoreError::Database(format!("migrating the mail tables: {e}")))
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Which mails each event calls for.
pub fn mails_for(event: &TicketEvent, notify_agents: bool) -> &'static [MailKind] {
    match event {
        TicketEvent::Received(_) if notify_agents => &[MailKind::Confirmation, MailKind::AgentNotification],
        TicketEvent::Received(_) => &[MailKind::Confirmation],
        TicketEvent::AgentReplied(_) => &[MailKind::Reply],
        TicketEvent::Resolved(_) => &[MailKind::Resolution],
        TicketEvent::Closed(_) => &[MailKind::Survey],
        // To the agents' address and the assignee (whichever of them has an address).
        TicketEvent::SlaBreached(_) => &[MailKind::SlaBreach],
        TicketEvent::Escalated(_) => &[MailKind::Escalation],
        _ => &[],
    }
}

/// The projection that fills the outbox.
#[derive(Clone)]
pub struct OutboxProjection {
    /// The right-hand side of our Message-IDs (`<uuid@domain>`).
    pub domain: Arc<str>,
    /// Whether an agents' address is configured for new-ticket notifications.
    pub notify_agents: bool,
    /// The mails the batch's events called for, written together when the batch ends.
    pending: Arc<Mutex<Vec<Enqueued>>>,
}

/// One mail to enqueue.
struct Enqueued {
    id: String,
    event_id: String,
    kind: &'static str,
    ticket_id: String,
    ticket_version: i64,
    position: i64,
    message_id: String,
    survey_token: Option<String>,
    created_us: i64,
}

impl OutboxProjection {
    pub fn new(domain: &str, notify_agents: bool) -> Self {
        Self { domain: domain.into(), notify_agents, pending: Arc::default() }
    }

    fn pending(&self) -> Result<std::sync::MutexGuard<'_, Vec<Enqueued>>, sqlx::Error> {
        self.pending.lock().map_err(|_| sqlx::Error::Protocol("the outbox batch is poisoned".into()))
    }
}

/// Rows per SQLite statement (11 parameters a row: well under SQLite's 32,766).
const ROWS_PER_STATEMENT: usize = 500;

impl Projection for OutboxProjection {
    fn name(&self) -> &'static str {
        "mail_outbox"
    }

    /// Never used: `ticketd rebuild` does not offer the outbox (a rebuild would send every
    /// mail again). Kept empty so that nothing can empty it by mistake.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    fn apply<'a>(
        &'a self,
        _transaction: &'a mut Transaction<'_>,
        ticket_id: TicketId,
        event: &'a RecordedEvent,
        decoded: &'a TicketEvent,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'a {
        async move {
            let mut pending = self.pending()?;
            for &kind in mails_for(decoded, self.notify_agents) {
                let id = uuid::Uuid::now_v7();
                pending.push(Enqueued {
                    id: id.to_string(),
                    event_id: event.event_id.to_string(),
                    kind: kind.name(),
                    ticket_id: ticket_id.as_uuid().to_string(),
                    ticket_version: event.version as i64,
                    position: event.position.0,
                    message_id: format!("<{id}@{}>", self.domain),
                    survey_token: (kind == MailKind::Survey).then(|| {
                        let secret: [u8; 32] = rand::random();
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
                    }),
                    created_us: now_us(),
                });
            }
            Ok(())
        }
    }

    fn begin_batch(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.clear();
        }
    }

    /// Writes the batch's mails in a few statements, in the batch's transaction (with the
    /// checkpoint): each event's mails are enqueued exactly once.
    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let mails: Vec<Enqueued> = std::mem::take(&mut *self.pending()?);
        if mails.is_empty() {
            return Ok(());
        }
        let tokens: Vec<(String, &str, i64)> = mails
            .iter()
            .filter_map(|m| m.survey_token.as_ref().map(|t| (hash_token(t), m.ticket_id.as_str(), m.created_us)))
            .collect();
        match transaction {
            Transaction::Postgres(connection) => {
                let column = |f: fn(&Enqueued) -> String| mails.iter().map(f).collect::<Vec<String>>();
                sqlx::query(
                    "INSERT INTO mail_outbox (id, event_id, kind, ticket_id, ticket_version, position, message_id, \
                     survey_token, status, next_attempt_us, created_us) \
                     SELECT id, event_id, kind, ticket_id, ticket_version, position, message_id, survey_token, \
                     'pending', created_us, created_us FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::bigint[]) \
                     AS m(id, event_id, kind, ticket_id, ticket_version, position, message_id, survey_token, created_us) \
                     ON CONFLICT (event_id, kind) DO NOTHING",
                )
                .bind(column(|m| m.id.clone()))
                .bind(column(|m| m.event_id.clone()))
                .bind(column(|m| m.kind.to_owned()))
                .bind(column(|m| m.ticket_id.clone()))
                .bind(mails.iter().map(|m| m.ticket_version).collect::<Vec<_>>())
                .bind(mails.iter().map(|m| m.position).collect::<Vec<_>>())
                .bind(column(|m| m.message_id.clone()))
                .bind(mails.iter().map(|m| m.survey_token.clone()).collect::<Vec<_>>())
                .bind(mails.iter().map(|m| m.created_us).collect::<Vec<_>>())
                .execute(&mut **connection)
                .await?;
                sqlx::query(
                    "INSERT INTO mail_threads (message_id, ticket_id, direction, created_us) \
                     SELECT message_id, ticket_id, 'out', created_us FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
                     AS t(message_id, ticket_id, created_us) ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(column(|m| m.message_id.clone()))
                .bind(column(|m| m.ticket_id.clone()))
                .bind(mails.iter().map(|m| m.created_us).collect::<Vec<_>>())
                .execute(&mut **connection)
                .await?;
                if !tokens.is_empty() {
                    sqlx::query(
                        "INSERT INTO survey_tokens (token_hash, ticket_id, created_us) \
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])",
                    )
                    .bind(tokens.iter().map(|t| t.0.clone()).collect::<Vec<_>>())
                    .bind(tokens.iter().map(|t| t.1.to_owned()).collect::<Vec<_>>())
                    .bind(tokens.iter().map(|t| t.2).collect::<Vec<_>>())
                    .execute(&mut **connection)
                    .await?;
                }
            }
            Transaction::Sqlite(connection) => {
                for chunk in mails.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO mail_outbox (id, event_id, kind, ticket_id, ticket_version, position, \
                         message_id, survey_token, status, next_attempt_us, created_us) ",
                    );
                    insert.push_values(chunk, |mut row, m| {
                        row.push_bind(&m.id)
                            .push_bind(&m.event_id)
                            .push_bind(m.kind)
                            .push_bind(&m.ticket_id)
                            .push_bind(m.ticket_version)
                            .push_bind(m.position)
                            .push_bind(&m.message_id)
                            .push_bind(&m.survey_token)
                            .push_bind("pending")
                            .push_bind(m.created_us)
                            .push_bind(m.created_us);
                    });
                    insert.push(" ON CONFLICT (event_id, kind) DO NOTHING");
                    insert.build().execute(&mut **connection).await?;
                    let mut threads = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO mail_threads (message_id, ticket_id, direction, created_us) ",
                    );
                    threads.push_values(chunk, |mut row, m| {
                        row.push_bind(&m.message_id).push_bind(&m.ticket_id).push_bind("out").push_bind(m.created_us);
                    });
                    threads.push(" ON CONFLICT (message_id) DO NOTHING");
                    threads.build().execute(&mut **connection).await?;
                }
                for chunk in tokens.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO survey_tokens (token_hash, ticket_id, created_us) ",
                    );
                    insert.push_values(chunk, |mut row, (hash, ticket_id, created_us)| {
                        row.push_bind(hash).push_bind(*ticket_id).push_bind(*created_us);
                    });
                    insert.build().execute(&mut **connection).await?;
                }
            }
        }
        Ok(())
    }
}

/// One outbox row, as the dispatcher and `ticketd outbox` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub event_id: String,
    pub kind: String,
    pub ticket_id: String,
    pub ticket_version: i64,
    pub message_id: String,
    #[serde(skip)]
    pub survey_token: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_us: i64,
    pub last_error: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub created_us: i64,
    pub sent_us: Option<i64>,
}

const ROW_COLUMNS: &str = "id, event_id, kind, ticket_id, ticket_version, message_id, survey_token, status, \
    CAST(attempts AS BIGINT) AS attempts, next_attempt_us, last_error, recipient, subject, created_us, sent_us";

/// What an operator watches of the outbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxHealth {
    pub pending: i64,
    pub oldest_pending_age_seconds: f64,
    pub failed: i64,
}

/// Mails waiting (and the oldest one's age) and mails refused for good.
pub async fn health(database: &Database) -> Result<OutboxHealth, StoreError> {
    // COUNT is a bigint on PostgreSQL and an integer on SQLite: both read as i64.
    let sql = "SELECT COUNT(*) FILTER (WHERE status = 'pending'), \
               MIN(created_us) FILTER (WHERE status = 'pending'), \
               COUNT(*) FILTER (WHERE status = 'failed') FROM mail_outbox";
    let (pending, oldest, failed): (i64, Option<i64>, i64) = match database {
        Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await,
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_one(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    let age = oldest.map_or(0.0, |created| ((now_us() - created) as f64 / 1e6).max(0.0));
    Ok(OutboxHealth { pending, oldest_pending_age_seconds: age, failed })
}

/// Rows whose time has come: pending ones to send, sent ones whose follow-up is not recorded.
pub async fn due(database: &Database, now: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM mail_outbox WHERE status IN ('pending', 'sent') AND next_attempt_us <= $1 \
         AND (lease_until_us IS NULL OR lease_until_us < $1) ORDER BY next_attempt_us, id LIMIT $2"
    );
    let rows =
        on_database!(database, |pool| sqlx::query_as::<_, OutboxRow>(&sql).bind(now).bind(limit).fetch_all(pool).await);
    rows.map_err(StoreError::from_sqlx)
}

/// Takes a row for `lease_us`: only one dispatcher (of any instance) works on it at a time.
pub async fn claim(
    database: &Database,
    id: &str,
    now: i64,
    lease_us: i64,
    fence: Option<&event_store::lease::Fence>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE mail_outbox SET lease_until_us = $2 WHERE id = $1 AND status IN ('pending', 'sent') \
               AND (lease_until_us IS NULL OR lease_until_us < $3)";
    if let (Some(fence), Database::Postgres(pool)) = (fence, database) {
        // The claim and the lease check in one transaction: only the job's leader claims.
        let mut transaction = pool.begin().await.map_err(StoreError::from_sqlx)?;
        match fence.check_in(&mut transaction).await {
            Ok(()) => {}
            Err(event_store::lease::CheckError::Lost(lost)) => {
                return Err(StoreError::Unavailable(lost.to_string()));
            }
            Err(event_store::lease::CheckError::Store(error)) => return Err(error),
        }
        let claimed = sqlx::query(sql)
            .bind(id)
            .bind(now + lease_us)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
        transaction.commit().await.map_err(StoreError::from_sqlx)?;
        return Ok(claimed == 1);
    }
    let result = on_database!(database, |pool| sqlx::query(sql)
        .bind(id)
        .bind(now + lease_us)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()));
    Ok(result.map_err(StoreError::from_sqlx)? == 1)
}

/// Records what happened to a row and releases it.
pub async fn record(database: &Database, id: &str, change: RowChange<'_>) -> Result<(), StoreError> {
    let now = now_us();
    let result = match change {
        RowChange::Sent { recipient, subject } => on_database!(database, |pool| {
            sqlx::query(
            "UPDATE mail_outbox SET status = 'sent', sent_us = $2, recipient = $3, subject = $4, survey_token = NULL, \
             attempts = attempts + 1, last_error = NULL, lease_until_us = NULL WHERE id = $1"
        )
        .bind(id)
        .bind(now)
        .bind(recipient)
        .bind(subject)
        .execute(pool)
        .await
        .map(drop)
        }),
        RowChange::Done => on_database!(database, |pool| sqlx::query(
            "UPDATE mail_outbox SET status = 'done', lease_until_us = NULL WHERE id = $1"
        )
        .bind(id)
        .execute(pool)
        .await
        .map(drop)),
        RowChange::Retry { error, next_attempt_us, attempted } => on_database!(database, |pool| sqlx::query(
            "UPDATE mail_outbox SET last_error = $2, next_attempt_us = $3, lease_until_us = NULL, \
             attempts = attempts + $4 WHERE id = $1"
        )
        .bind(id)
        .bind(error)
        .bind(next_attempt_us)
        .bind(i64::from(attempted))
        .execute(pool)
        .await
        .map(drop)),
        RowChange::Finished { status, reason } => on_database!(database, |pool| sqlx::query(
            "UPDATE mail_outbox SET status = $2, last_error = $3, survey_token = NULL, lease_until_us = NULL \
             WHERE id = $1"
        )
        .bind(id)
        .bind(status)
        .bind(reason)
        .execute(pool)
        .await
        .map(drop)),
    };
    result.map_err(StoreError::from_sqlx)
}

pub enum RowChange<'a> {
    /// The mail server took it.
    Sent { recipient: &'a str, subject: &'a str },
    /// The follow-up command (if any) is recorded: nothing more to do.
    Done,
    /// Try again later. `attempted`: whether a delivery was attempted (counts as an attempt).
    Retry { error: &'a str, next_attempt_us: i64, attempted: bool },
    /// `skipped` (nothing to send) or `failed` (refused for good), with why.
    Finished { status: &'static str, reason: &'a str },
}

/// Every row, newest first (or only those not yet delivered).
pub async fn list(database: &Database, undelivered_only: bool, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let filter = if undelivered_only { "WHERE status IN ('pending', 'sent', 'failed')" } else { "" };
    let sql = format!("SELECT {ROW_COLUMNS} FROM mail_outbox {filter} ORDER BY created_us DESC, id DESC LIMIT $1");
    let rows = on_database!(database, |pool| sqlx::query_as::<_, OutboxRow>(&sql).bind(limit).fetch_all(pool).await);
    rows.map_err(StoreError::from_sqlx)
}

/// How many rows stand in each status.
pub async fn counts(database: &Database) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT status, COUNT(*) FROM mail_outbox GROUP BY status ORDER BY status";
    let rows = on_database!(database, |pool| sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool).await);
    rows.map_err(StoreError::from_sqlx)
}

/// Sends a failed row again (an operator's decision after fixing the cause).
pub async fn retry_failed(database: &Database, id: &str) -> Result<bool, StoreError> {
    let sql = "UPDATE mail_outbox SET status = 'pending', next_attempt_us = $2 WHERE id = $1 AND status = 'failed'";
    let result = on_database!(database, |pool| sqlx::query(sql)
        .bind(id)
        .bind(now_us())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()));
    Ok(result.map_err(StoreError::from_sqlx)? == 1)
}

/// The first Message-ID we sent for a ticket: what later mails reference to stay in one thread.
pub async fn thread_root(database: &Database, ticket_id: TicketId) -> Result<Option<String>, StoreError> {
    let sql = "SELECT message_id FROM mail_threads WHERE ticket_id = $1 AND direction = 'out' \
               ORDER BY created_us, message_id LIMIT 1";
    let row = on_database!(database, |pool| sqlx::query_scalar::<_, String>(sql)
        .bind(ticket_id.as_uuid().to_string())
        .fetch_optional(pool)
        .await);
    row.map_err(StoreError::from_sqlx)
}

/// The ticket a survey link belongs to.
pub async fn survey_ticket(database: &Database, token: &str) -> Result<Option<TicketId>, StoreError> {
    let sql = "SELECT ticket_id FROM survey_tokens WHERE token_hash = $1";
    let row = on_database!(database, |pool| sqlx::query_scalar::<_, String>(sql)
        .bind(hash_token(token))
        .fetch_optional(pool)
        .await)
    .map_err(StoreError::from_sqlx)?;
    Ok(row.and_then(|id| uuid::Uuid::parse_str(&id).ok()).map(TicketId::from_uuid))
}

/// A ticket's mails, oldest first (the console shows each reply's delivery state).
pub async fn for_ticket(database: &Database, ticket_id: TicketId) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM mail_outbox WHERE ticket_id = $1 ORDER BY created_us, id");
    let id = ticket_id.as_uuid().to_string();
    let rows = on_database!(database, |pool| sqlx::query_as::<_, OutboxRow>(&sql).bind(&id).fetch_all(pool).await);
    rows.map_err(StoreError::from_sqlx)
}
