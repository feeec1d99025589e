//! API tokens: created by `ticketd token create`, shown once, stored only as a SHA-256 hash.
//!
//! A token is 32 random bytes, so a fast hash is the right tool: there is nothing to
//! brute-force that a slow password hash would protect.

use base64::Engine;
use chrono::Utc;
use event_store::{Database, StoreError};
use sha2::{Digest, Sha256};
use ticket_domain::vocabulary::Role;

/// Who is calling, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Tokens look like `tkd_` + 43 characters of base64url.
const TOKEN_PREFIX: &str = "tkd_";

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::QualityManager => "quality_manager",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
        Role::Intake => "intake",
    }
}

pub fn parse_role(name: &str) -> Option<Role> {
    match name {
        "agent" => Some(Role::Agent),
        "quality_manager" => Some(Role::QualityManager),
        "auditor" => Some(Role::Auditor),
        "admin" => Some(Role::Admin),
        "intake" => Some(Role::Intake),
        _ => None,
    }
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let result = match database {
        Database::Sqlite { write, .. } => event_store::migrator(sqlx::migrate!("./migrations/sqlite")).run(write).await,
        Database::Postgres(pool) => event_store::migrator(sqlx::migrate!("./migrations/postgres")).run(pool).await,
    };
    result.map_err(|e| StoreError::Database(format!("migrating the API tables: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named '{0}' already exists")]
    NameTaken(String),
    #[error("the token name must be 1-100 characters of letters, digits, '.', '_', '-' or '@'")]
    BadName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token and returns it; only its hash is stored.
pub async fn create_token(database: &Database, name: &str, role: Role) -> Result<String, TokenError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !valid {
        return Err(TokenError::BadName);
    }
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let id = uuid::Uuid::now_v7();
    let result = match database {
        Database::Sqlite { write, .. } => {
            sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(id)
                .bind(name)
                .bind(role_name(role))
                .bind(hash(&token))
                .bind(Utc::now().timestamp_micros())
                .execute(write)
                .await
                .map(|_| ())
        }
        Database::Postgres(pool) => {
            sqlx::query("INSERT INTO api_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(name)
                .bind(role_name(role))
                .bind(hash(&token))
                .execute(pool)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(_) => Ok(token),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Err(TokenError::NameTaken(name.to_owned())),
        Err(error) => Err(StoreError::from_sqlx(error).into()),
    }
}

/// Revokes a token by name; returns whether one was revoked.
pub async fn revoke_token(database: &Database, name: &str) -> Result<bool, StoreError> {
    let result = match database {
        Database::Sqlite { write, .. } => {
            sqlx::query("UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL")
                .bind(name)
                .bind(Utc::now().timestamp_micros())
                .execute(write)
                .await
                .map(|r| r.rows_affected())
        }
        Database::Postgres(pool) => {
            sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        }
    };
    Ok(result.map_err(StoreError::from_sqlx)? > 0)
}

/// The live tokens: (name, role, revoked).
pub async fn list_tokens(database: &Database) -> Result<Vec<(String, String, bool)>, StoreError> {
    let sql = "SELECT name, role, revoked_at IS NOT NULL FROM api_tokens ORDER BY name";
    let rows: Vec<(String, String, bool)> = match database {
        Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await,
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(rows)
}

/// The caller a bearer token belongs to, if it is a live token.
pub async fn authenticate(database: &Database, token: &str) -> Result<Option<Caller>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let token_hash = hash(token);
    let row: Option<(String, String)> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL")
                .bind(&token_hash)
                .fetch_optional(read)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(&token_hash)
                .fetch_optional(pool)
                .await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(row.and_then(|(name, role)| parse_role(&role).map(|role| Caller { name, role })))
}

/// Recently checked tokens, so a request does not read the database to know its caller. A
/// revoked token stops working within `TOKEN_CACHE_TTL`.
pub struct TokenCache {
    /// A std mutex: held for a lookup or an insert, never across an await.
    entries: std::sync::Mutex<std::collections::HashMap<String, (Caller, std::time::Instant)>>,
}

pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
const TOKEN_CACHE_ENTRIES_MAX: usize = 10_000;

impl Default for TokenCache {
    fn default() -> Self {
        Self { entries: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }
}

impl TokenCache {
    pub fn get(&self, token: &str) -> Option<Caller> {
        let entries = self.entries.lock().expect("token cache lock");
        let (caller, checked) = entries.get(&hash(token))?;
        (checked.elapsed() < TOKEN_CACHE_TTL).then(|| caller.clone())
    }

    pub fn put(&self, token: &str, caller: Caller) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= TOKEN_CACHE_ENTRIES_MAX {
            entries.retain(|_, (_, checked)| checked.elapsed() < TOKEN_CACHE_TTL);
            if entries.len() >= TOKEN_CACHE_ENTRIES_MAX {
                entries.clear();
            }
        }
        // Keyed by the hash: the cache never holds a usable token.
        entries.insert(hash(token), (caller, std::time::Instant::now()));
    }
}
