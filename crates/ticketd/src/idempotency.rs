//! `Idempotency-Key`: a request repeated with the same key (by the same caller) gets the first
//! answer, and appends nothing new — also after a restart.
//!
//! The key is claimed (a row with no answer yet) before the command runs, with the ticket id
//! and correlation id the command will use; the answer is stored after. A repeat that finds the
//! claim unanswered either waits for the first request (answer `request_in_progress`) or, when
//! the first request died after appending, finds its events by correlation id and answers from
//! them instead of running the command again.

use std::time::Duration;

use chrono::Utc;
use event_store::{Database, StoreError};
use sha2::{Digest, Sha256};
use ticket_domain::vocabulary::TicketId;
use uuid::Uuid;

/// How long an unanswered claim is taken to belong to a request still running.
pub const CLAIM_STALE_AFTER: Duration = Duration::from_secs(30);
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
    /// The first request stopped without an answer: take it over with its ids.
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
) -> Result<Claim, StoreError> {
    let correlation_id = Uuid::now_v7();
    let stale_micros = Utc::now().timestamp_micros() - CLAIM_STALE_AFTER.as_micros() as i64;
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
                .bind(CLAIM_STALE_AFTER.as_secs_f64())
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
        // Released between our insert and our read: try once more next time.
        return Ok(Claim::InProgress);
    };
    if stored_hash != hash {
        return Ok(Claim::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Answered { status: status as u16, body },
        _ if stale => Claim::Abandoned { ticket_id: TicketId::from_uuid(ticket), correlation_id: correlation },
        _ => Claim::InProgress,
    })
}

/// Stores the answer to a claimed key.
pub async fn complete(database: &Database, actor: &str, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
    match database {
        Database::Sqlite { write, .. } => {
            sqlx::query("UPDATE idempotency_keys SET status = ?3, body = ?4 WHERE actor = ?1 AND key = ?2")
                .bind(actor)
                .bind(key)
                .bind(i32::from(status))
                .bind(body)
                .execute(write)
                .await
                .map(|_| ())
        }
        Database::Postgres(pool) => {
            sqlx::query("UPDATE idempotency_keys SET status = $3, body = $4 WHERE actor = $1 AND key = $2")
                .bind(actor)
                .bind(key)
                .bind(i32::from(status))
                .bind(body)
                .execute(pool)
                .await
                .map(|_| ())
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Forgets a claim whose request failed in a way worth retrying (the database was down).
pub async fn release(database: &Database, actor: &str, key: &str) -> Result<(), StoreError> {
    match database {
        Database::Sqlite { write, .. } => {
            sqlx::query("DELETE FROM idempotency_keys WHERE actor = ?1 AND key = ?2 AND status IS NULL")
                .bind(actor)
                .bind(key)
                .execute(write)
                .await
                .map(|_| ())
        }
        Database::Postgres(pool) => {
            sqlx::query("DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND status IS NULL")
                .bind(actor)
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}
