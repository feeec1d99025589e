//! `Idempotency-Key`: a request repeated with the same key (by the same caller) gets the first
//! answer, and appends nothing new — also after a restart.
//!
//! The key is claimed (a row with no answer yet) before the command runs, with the ticket id
//! and correlation id the command will use; the first answer is stored after (a later one never
//! replaces it). A repeat that finds the claim unanswered is told `request_in_progress` (with
//! `Retry-After`) until the claim is older than the stale limit; then one repeat at a time
//! takes the claim over (its age starts again) and runs the command with the *same* ids.
//!
//! That is safe whatever the first attempt is still doing: the command runs through
//! `TicketService::execute_once`, whose events' ids derive from the correlation id, so the
//! store keeps only one application, and every attempt that finds the command applied answers
//! from the stored events. A request that failed in a way worth retrying (5xx) leaves its claim
//! stale at once rather than deleting it: its append may have committed unseen, so its retry
//! must use the same ids.

use std::time::Duration;

use chrono::Utc;
use event_store::{Database, StoreError};
use sha2::{Digest, Sha256};
use ticket_domain::vocabulary::TicketId;
use uuid::Uuid;

/// How long an unanswered claim is taken to belong to a request still running, unless
/// `ticketd serve --idempotency-stale-seconds` says otherwise.
pub const CLAIM_STALE_AFTER: Duration = Duration::from_secs(30);
/// How long a client told `request_in_progress` is asked to wait (`Retry-After`, seconds).
pub const RETRY_AFTER_SECONDS: u64 = 1;
pub const KEY_CHARS_MAX: usize = 200;

pub enum Claim {
    /// Ours: run the command with these ids, then `complete`.
    Claimed { ticket_id: TicketId, correlation_id: Uuid },
    /// A first request with this key was answered: repeat its answer.
    Answered { status: u16, body: String },
    /// The first request with this key had a different method, path or body.
    Mismatch,
    /// The first request with this key is still being handled.
    InProgress,
    /// The first request has not answered within the stale limit: this request has taken the
    /// claim over and runs the command with the same ids (at most once, whatever the first is
    /// still doing).
    Abandoned { ticket_id: TicketId, correlation_id: Uuid },
}

/// A fingerprint of what the request asked: method, path and body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

type Row = (String, Uuid, Uuid, Option<i32>, Option<String>, bool);

pub async fn claim(
    database: &Database,
    actor: &str,
    key: &str,
    hash: &str,
    ticket_id: TicketId,
    stale_after: Duration,
) -> Result<Claim, StoreError> {
    let correlation_id = Uuid::now_v7();
    let stale_micros = Utc::now().timestamp_micros() - stale_after.as_micros() as i64;
    let (inserted, existing): (u64, Option<Row>) = match database {
        Database::Sqlite { write, .. } => {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (actor, key, request_hash, ticket_id, correlation_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (actor, key) DO NOTHING",
            )
            .bind(actor)
            .bind(key)
            .bind(hash)
            .bind(ticket_id.as_uuid())
            .bind(correlation_id)
            .bind(Utc::now().timestamp_micros())
            .execute(write)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
            let existing = if inserted == 0 {
                sqlx::query_as(
                    "SELECT request_hash, ticket_id, correlation_id, status, body, created_at < ?3 \
                     FROM idempotency_keys WHERE actor = ?1 AND key = ?2",
                )
                .bind(actor)
                .bind(key)
                .bind(stale_micros)
                .fetch_optional(write)
                .await
                .map_err(StoreError::from_sqlx)?
            } else {
                None
            };
            (inserted, existing)
        }
        Database::Postgres(pool) => {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (actor, key, request_hash, ticket_id, correlation_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (actor, key) DO NOTHING",
            )
            .bind(actor)
            .bind(key)
            .bind(hash)
            .bind(ticket_id.as_uuid())
            .bind(correlation_id)
            .execute(pool)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
            let existing = if inserted == 0 {
                sqlx::query_as(
                    "SELECT request_hash, ticket_id, correlation_id, status, body, \
                            created_at < now() - make_interval(secs => $3) \
                     FROM idempotency_keys WHERE actor = $1 AND key = $2",
                )
                .bind(actor)
                .bind(key)
                .bind(stale_after.as_secs_f64())
                .fetch_optional(pool)
                .await
                .map_err(StoreError::from_sqlx)?
            } else {
                None
            };
            (inserted, existing)
        }
    };
    if inserted == 1 {
        return Ok(Claim::Claimed { ticket_id, correlation_id });
    }
    let Some((stored_hash, ticket, correlation, status, body, stale)) = existing else {
        // Deleted between our insert and our read (by hand): try once more next time.
        return Ok(Claim::InProgress);
    };
    if stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Answered { status: status as u16, body },
        _ if stale && take_over(database, actor, key, stale_after).await? => {
            Claim::Abandoned { ticket_id: TicketId::from_uuid(ticket), correlation_id: correlation }
        }
        _ => Claim::InProgress,
    })
}

/// Takes a stale, unanswered claim over: its age starts again, so that repeats arriving
/// meanwhile wait for this attempt instead of each running the command. False when another
/// repeat took it first (or it was answered meanwhile).
async fn take_over(database: &Database, actor: &str, key: &str, stale_after: Duration) -> Result<bool, StoreError> {
    let taken = match database {
        Database::Sqlite { write, .. } => {
            let now = Utc::now().timestamp_micros();
            sqlx::query(
                "UPDATE idempotency_keys SET created_at = ?3 \
                 WHERE actor = ?1 AND key = ?2 AND status IS NULL AND created_at < ?4",
            )
            .bind(actor)
            .bind(key)
            .bind(now)
            .bind(now - stale_after.as_micros() as i64)
            .execute(write)
            .await
            .map(|done| done.rows_affected())
        }
        Database::Postgres(pool) => sqlx::query(
            "UPDATE idempotency_keys SET created_at = now() \
                 WHERE actor = $1 AND key = $2 AND status IS NULL \
                   AND created_at < now() - make_interval(secs => $3)",
        )
        .bind(actor)
        .bind(key)
        .bind(stale_after.as_secs_f64())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()),
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(taken == 1)
}

/// The stored answer to a key, if it has one.
pub async fn answer(database: &Database, actor: &str, key: &str) -> Result<Option<(u16, String)>, StoreError> {
    let row: Option<(Option<i32>, Option<String>)> = match database {
        Database::Sqlite { write, .. } => {
            sqlx::query_as("SELECT status, body FROM idempotency_keys WHERE actor = ?1 AND key = ?2")
                .bind(actor)
                .bind(key)
                .fetch_optional(write)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT status, body FROM idempotency_keys WHERE actor = $1 AND key = $2")
                .bind(actor)
                .bind(key)
                .fetch_optional(pool)
                .await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(match row {
        Some((Some(status), Some(body))) => Some((status as u16, body)),
        _ => None,
    })
}

/// Stores the answer to a claimed key, unless an answer is stored already (the first answer
/// stays). True when this answer was stored.
pub async fn complete(
    database: &Database,
    actor: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<bool, StoreError> {
    let stored = match database {
        Database::Sqlite { write, .. } => sqlx::query(
            "UPDATE idempotency_keys SET status = ?3, body = ?4 WHERE actor = ?1 AND key = ?2 AND status IS NULL",
        )
        .bind(actor)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(write)
        .await
        .map(|done| done.rows_affected()),
        Database::Postgres(pool) => sqlx::query(
            "UPDATE idempotency_keys SET status = $3, body = $4 WHERE actor = $1 AND key = $2 AND status IS NULL",
        )
        .bind(actor)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()),
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(stored == 1)
}

/// Lets the next repeat take over at once a claim whose request failed in a way worth retrying
/// (the database was down). The claim keeps its ids: the failed attempt's append may have
/// committed without its answer reaching us, and the takeover then finds it.
pub async fn release(database: &Database, actor: &str, key: &str) -> Result<(), StoreError> {
    match database {
        Database::Sqlite { write, .. } => {
            sqlx::query("UPDATE idempotency_keys SET created_at = 0 WHERE actor = ?1 AND key = ?2 AND status IS NULL")
                .bind(actor)
                .bind(key)
                .execute(write)
                .await
                .map(|_| ())
        }
        Database::Postgres(pool) => sqlx::query(
            "UPDATE idempotency_keys SET created_at = '-infinity' WHERE actor = $1 AND key = $2 AND status IS NULL",
        )
        .bind(actor)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}
