//! Staff accounts of the console: passwords (argon2id), the optional TOTP second factor,
//! server-side sessions and the sign-in rate limits.
//!
//! Who a person is — name, display name, e-mail, role, language, disabled — is the registry's
//! staff directory (`StaffTerms`, events on the `registry` stream). Only secrets live here, in
//! `staff_credentials`, never in an event. A session is a random 256-bit token in a cookie; the
//! database keeps only its SHA-256 (like API tokens: a random secret needs no slow hash).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use chrono::{DateTime, Utc};
use event_store::{Database, StoreError};
use sha2::{Digest, Sha256};

use crate::sql;

/// argon2id with OWASP's first choice: 19 MiB, 2 passes, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_PASSES: u32 = 2;
/// Passwords are 10 to 1,000 characters.
pub const PASSWORD_CHARS_MIN: usize = 10;
pub const PASSWORD_CHARS_MAX: usize = 1_000;

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a password must be {PASSWORD_CHARS_MIN} to {PASSWORD_CHARS_MAX} characters")]
    BadPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if (PASSWORD_CHARS_MIN..=PASSWORD_CHARS_MAX).contains(&chars) { Ok(()) } else { Err(AccountError::BadPassword) }
}

/// The PHC string of a password's argon2id hash, with a fresh salt. Slow by design: call it
/// off the async threads (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches a stored hash (its own parameters are read from it).
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash no password matches in practice, verified when the name is unknown so that a wrong
/// name costs as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&format!("{:x}", rand::random::<u128>())).unwrap_or_default())
}

/// Sets a password (and ends every session of the account: a changed password signs everyone out).
pub async fn set_password(
    database: &Database,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    check_password(password)?;
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    sql::execute(
        database,
        "INSERT INTO staff_credentials (name, password_hash, totp_secret, changed_at) VALUES ($1, $2, NULL, $3) \
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, changed_at = excluded.changed_at",
        vec![name.into(), hash.into(), now.timestamp_micros().into()],
    )
    .await?;
    end_sessions(database, name).await?;
    Ok(())
}

/// The stored hash and TOTP secret of an account.
pub async fn credentials(database: &Database, name: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
    sql::fetch_one(
        database,
        "SELECT password_hash, totp_secret FROM staff_credentials WHERE name = $1",
        vec![name.into()],
    )
    .await
}

/// Whether the account has a password at all.
pub async fn has_password(database: &Database, name: &str) -> Result<bool, StoreError> {
    Ok(credentials(database, name).await?.is_some())
}

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of drift either way)

fn totp(secret: &[u8], account: &str) -> Option<totp_rs::TOTP> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec(), Some("ticketd".into()), account.into()).ok()
}

/// Turns the second factor on with a new secret; returns its `otpauth://` URL (for an
/// authenticator app) and the secret in base32.
pub async fn enable_totp(database: &Database, name: &str) -> Result<Option<(String, String)>, StoreError> {
    let secret: [u8; 20] = rand::random();
    let encoded = base32_encode(&secret);
    let changed = sql::execute(
        database,
        "UPDATE staff_credentials SET totp_secret = $2 WHERE name = $1",
        vec![name.into(), encoded.clone().into()],
    )
    .await?;
    if changed == 0 {
        return Ok(None);
    }
    end_sessions(database, name).await?;
    Ok(totp(&secret, name).map(|t| (t.get_url(), encoded)))
}

pub async fn disable_totp(database: &Database, name: &str) -> Result<bool, StoreError> {
    Ok(sql::execute(database, "UPDATE staff_credentials SET totp_secret = NULL WHERE name = $1", vec![name.into()])
        .await?
        > 0)
}

fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.chars().filter(|c| *c != '=') {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The TOTP code for a base32 secret at an instant.
#[cfg(test)]
pub fn totp_code(secret_base32: &str, at: DateTime<Utc>) -> Option<String> {
    let secret = base32_decode(secret_base32)?;
    Some(totp(&secret, "x")?.generate(at.timestamp().max(0) as u64))
}

/// Whether `code` is the TOTP code of the secret now (one 30 s step of drift allowed).
pub fn check_totp(secret_base32: &str, code: &str, now: DateTime<Utc>) -> bool {
    let Some(secret) = base32_decode(secret_base32) else { return false };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(&secret, "x").is_some_and(|t| t.check(&code, now.timestamp().max(0) as u64))
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub name: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// How long a session lives: idle (since its last request) and in all.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle: chrono::Duration,
    pub absolute: chrono::Duration,
}

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Starts a session; returns the cookie's token (only its hash is stored).
pub async fn create_session(database: &Database, name: &str, now: DateTime<Utc>) -> Result<String, StoreError> {
    let token = random_token();
    let at = now.timestamp_micros();
    sql::execute(
        database,
        "INSERT INTO console_sessions (token_hash, name, csrf_token, created_at, seen_at) VALUES ($1, $2, $3, $4, $4)",
        vec![token_hash(&token).into(), name.into(), random_token().into(), at.into()],
    )
    .await?;
    Ok(token)
}

/// The live session of a cookie's token; an expired one is deleted and `None`.
pub async fn session(
    database: &Database,
    token: &str,
    now: DateTime<Utc>,
    limits: SessionLimits,
) -> Result<Option<Session>, StoreError> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let hash = token_hash(token);
    let row: Option<(String, String, i64, i64)> = sql::fetch_one(
        database,
        "SELECT name, csrf_token, created_at, seen_at FROM console_sessions WHERE token_hash = $1",
        vec![hash.clone().into()],
    )
    .await?;
    let Some((name, csrf_token, created, seen)) = row else { return Ok(None) };
    let instant = |us: i64| DateTime::from_timestamp_micros(us).unwrap_or_default();
    let session = Session { token_hash: hash, name, csrf_token, created_at: instant(created), seen_at: instant(seen) };
    if now - session.seen_at > limits.idle || now - session.created_at > limits.absolute {
        end_session(database, &session.token_hash).await?;
        return Ok(None);
    }
    // The idle clock restarts at most once a minute (one write per minute, not per request).
    if now - session.seen_at > chrono::Duration::seconds(60) {
        sql::execute(
            database,
            "UPDATE console_sessions SET seen_at = $2 WHERE token_hash = $1",
            vec![session.token_hash.clone().into(), now.timestamp_micros().into()],
        )
        .await?;
    }
    Ok(Some(session))
}

/// Deletes every expired session (run at each sign-in, so abandoned ones do not pile up).
pub async fn purge_expired(database: &Database, now: DateTime<Utc>, limits: SessionLimits) -> Result<u64, StoreError> {
    let idle = (now - limits.idle).timestamp_micros();
    let absolute = (now - limits.absolute).timestamp_micros();
    sql::execute(
        database,
        "DELETE FROM console_sessions WHERE seen_at < $1 OR created_at < $2",
        vec![idle.into(), absolute.into()],
    )
    .await
}

pub async fn end_session(database: &Database, token_hash: &str) -> Result<(), StoreError> {
    sql::execute(database, "DELETE FROM console_sessions WHERE token_hash = $1", vec![token_hash.into()]).await?;
    Ok(())
}

/// Ends every session of an account (password changed, account disabled, second factor changed).
pub async fn end_sessions(database: &Database, name: &str) -> Result<u64, StoreError> {
    sql::execute(database, "DELETE FROM console_sessions WHERE name = $1", vec![name.into()]).await
}

// ---------------------------------------------------------------------------------------------
// Sign-in rate limits

/// Failed sign-ins counted in a sliding window, per account and per client address. A success
/// does not clear the address's count (one good account must not unlock guessing others).
pub struct SignInLimiter {
    window: Duration,
    per_account: usize,
    per_address: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignInLimiter {
    pub fn new(window: Duration, per_account: usize, per_address: usize) -> Self {
        Self { window, per_account, per_address, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(account: &str, address: Option<IpAddr>) -> (String, Option<String>) {
        (format!("account:{}", account.to_lowercase()), address.map(|a| format!("address:{a}")))
    }

    /// How long until another attempt may be made, when one may not be made now.
    pub fn blocked(&self, account: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("limiter lock");
        let (account_key, address_key) = Self::keys(account, address);
        let mut wait = None;
        for (key, limit) in [(Some(account_key), self.per_account), (address_key, self.per_address)] {
            let Some(key) = key else { continue };
            if let Some(times) = failures.get_mut(&key) {
                while times.front().is_some_and(|t| now.duration_since(*t) > self.window) {
                    times.pop_front();
                }
                if times.len() >= limit
                    && let Some(oldest) = times.front()
                {
                    let left = self.window.saturating_sub(now.duration_since(*oldest));
                    wait = Some(wait.map_or(left, |w: Duration| w.max(left)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("limiter lock");
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) <= self.window));
        }
        let (account_key, address_key) = Self::keys(account, address);
        for key in [Some(account_key), address_key].into_iter().flatten() {
            failures.entry(key).or_default().push_back(now);
        }
    }

    pub fn succeeded(&self, account: &str) {
        let (account_key, _) = Self::keys(account, None);
        self.failures.lock().expect("limiter lock").remove(&account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterx"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn totp_codes_follow_rfc_6238() {
        // RFC 6238 appendix B: the SHA-1 secret "12345678901234567890" at 59 s gives 94287082
        // (8 digits); its last 6 are the 6-digit code.
        let secret = base32_encode(b"12345678901234567890");
        let at = DateTime::from_timestamp(59, 0).unwrap();
        assert_eq!(totp_code(&secret, at).as_deref(), Some("287082"));
        assert!(check_totp(&secret, "287 082", at));
        assert!(!check_totp(&secret, "287083", at));
        assert_eq!(base32_decode(&secret).unwrap(), b"12345678901234567890");
    }

    #[test]
    fn failures_block_an_account_and_an_address_until_the_window_passes() {
        let limiter = SignInLimiter::new(Duration::from_millis(200), 3, 5);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.blocked("kata", Some(address)).is_none());
            limiter.failed("kata", Some(address));
        }
        assert!(limiter.blocked("kata", None).is_some(), "the account is blocked from anywhere");
        assert!(limiter.blocked("bela", Some(address)).is_none(), "the address has 2 failures left");
        limiter.failed("bela", Some(address));
        limiter.failed("bela", Some(address));
        assert!(limiter.blocked("zoli", Some(address)).is_some(), "the address is blocked for every account");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.blocked("kata", Some(address)).is_none());
    }
}
