//! Crypto-shredding: a ticket's personal data can be erased without touching its history.
//!
//! - Every ticket has a data key of its own (32 random bytes), created with its first event
//!   and kept in `personal_keys` only wrapped by a key-encryption key ([`kek`]) that never enters
//!   the database.
//! - The `personal` object of each of the ticket's events is sealed with XChaCha20-Poly1305
//!   under that key, bound to the event's id, stream and version (so a sealed part cannot be
//!   moved to another event), and stored as the string `xc20p1.BASE64(nonce ‖ ciphertext)`.
//! - [`SealedStore`] wraps the event store: it seals on append and opens on read, so everything
//!   above it (the service, the projections, the pages) sees plaintext, and nothing below it
//!   (the database, its backups, the ledger's leaves) does.
//! - Erasure destroys the wrapped key ([`Vault::erase`]). From then on every personal part of
//!   the ticket reads as erased ([`ticket_domain::event::erased_personal`]); the events, their
//!   order, the statistics and the ledger's hashes are unchanged.
//!
//! Events stored before sealing existed hold their `personal` part as plain JSON; they read as
//! they are (see README, "Personal data").

pub mod kek;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, OsRng, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use event_store::{
    AppendOutcome, Database, EventStore, ExpectedVersion, GlobalPosition, Json, NewEvent, RecordedEvent, Sequence,
    SharedStore, StoreError, StreamId,
};
use serde_json::Value;
use uuid::Uuid;

pub use kek::{KekError, Keks};

/// The prefix of a sealed personal part (the format's name and version).
pub const SEALED_PREFIX: &str = "xc20p1.";

/// How long a data key read from the database is trusted before it is read again: another
/// instance sharing the database may have destroyed it meanwhile.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

const KEY_CACHE_MAX: usize = 100_000;

/// Runs the vault's migration.
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let result = match database {
        Database::Sqlite { write, .. } => event_store::migrator(sqlx::migrate!("./migrations/sqlite")).run(write).await,
        Database::Postgres(pool) => event_store::migrator(sqlx::migrate!("./migrations/postgres")).run(pool).await,
    };
    result.map_err(|e| StoreError::Database(format!("migrating the data keys: {e}")))
}

/// A ticket's data key as the vault knows it.
#[derive(Clone)]
enum Entry {
    Live(Arc<XChaCha20Poly1305>),
    Erased,
    /// No key was ever made (a ticket whose events were all stored before sealing).
    None,
}

/// The data keys: created, unwrapped (and cached for a while), destroyed.
pub struct Vault {
    database: Database,
    keks: RwLock<Arc<Keks>>,
    /// A std mutex: held for a lookup or an insert, never across an await.
    cache: Mutex<lru::LruCache<Uuid, (Instant, Entry)>>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn store_error(error: sqlx::Error) -> StoreError {
    StoreError::from_sqlx(error)
}

fn kek_error(error: KekError) -> StoreError {
    StoreError::Database(error.to_string())
}

type KeyRow = (Uuid, Option<String>, Option<Vec<u8>>);

impl Vault {
    pub fn new(database: Database, keks: Keks) -> Self {
        let capacity = std::num::NonZeroUsize::new(KEY_CACHE_MAX).expect("not zero");
        Self { database, keks: RwLock::new(Arc::new(keks)), cache: Mutex::new(lru::LruCache::new(capacity)) }
    }

    fn keks(&self) -> Arc<Keks> {
        self.keks.read().expect("keks lock").clone()
    }

    /// Refuses to run with a key file that cannot unwrap every live data key (a service started
    /// with the wrong file would otherwise show nothing personal, or seal with a second key).
    pub async fn check_keys(&self) -> Result<(), StoreError> {
        let sql = "SELECT DISTINCT kek_id FROM personal_keys WHERE kek_id IS NOT NULL";
        let ids: Vec<String> = match &self.database {
            Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_all(read).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .map_err(store_error)?;
        let keks = self.keks();
        let missing: Vec<&String> = ids.iter().filter(|id| keks.get(id).is_none()).collect();
        if !missing.is_empty() {
            return Err(StoreError::Database(format!(
                "data keys in the database are wrapped by key-encryption key(s) {missing:?}, which the key file \
                 (holding {:?}) lacks: start with the key file they were made with",
                keks.ids().collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    /// Whether any data key exists yet (a new key file may be made only for a database without).
    pub async fn is_empty(database: &Database) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM personal_keys";
        let count: i64 = match database {
            Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .map_err(store_error)?;
        Ok(count == 0)
    }

    fn cached(&self, ticket: Uuid) -> Option<Entry> {
        let mut cache = self.cache.lock().expect("key cache lock");
        match cache.get(&ticket) {
            Some((at, entry)) if matches!(entry, Entry::Erased) || at.elapsed() < KEY_CACHE_TTL => Some(entry.clone()),
            _ => None,
        }
    }

    fn remember(&self, ticket: Uuid, entry: Entry) {
        self.cache.lock().expect("key cache lock").put(ticket, (Instant::now(), entry));
    }

    fn entry_of(&self, keks: &Keks, (ticket, kek_id, wrapped): KeyRow) -> Result<Entry, StoreError> {
        let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else { return Ok(Entry::Erased) };
        let kek = keks.get(&kek_id).ok_or_else(|| kek_error(KekError::Unknown { ticket, kek_id: kek_id.clone() }))?;
        let key = kek.unwrap(ticket, &wrapped).map_err(kek_error)?;
        Ok(Entry::Live(Arc::new(XChaCha20Poly1305::new((&*key).into()))))
    }

    /// The data keys of these tickets (cached ones, and the rest in one query).
    async fn entries(&self, tickets: &[Uuid]) -> Result<HashMap<Uuid, Entry>, StoreError> {
        let mut found = HashMap::with_capacity(tickets.len());
        let mut missing = Vec::new();
        for ticket in tickets {
            if found.contains_key(ticket) || missing.contains(ticket) {
                continue;
            }
            match self.cached(*ticket) {
                Some(entry) => {
                    found.insert(*ticket, entry);
                }
                None => missing.push(*ticket),
            }
        }
        let keks = self.keks();
        for chunk in missing.chunks(500) {
            let rows = self.read_rows(chunk).await?;
            for row in rows {
                let ticket = row.0;
                let entry = self.entry_of(&keks, row)?;
                self.remember(ticket, entry.clone());
                found.insert(ticket, entry);
            }
            for ticket in chunk {
                found.entry(*ticket).or_insert(Entry::None);
            }
        }
        Ok(found)
    }

    async fn read_rows(&self, tickets: &[Uuid]) -> Result<Vec<KeyRow>, StoreError> {
        match &self.database {
            Database::Sqlite { read, .. } => {
                let marks = vec!["?"; tickets.len()].join(",");
                let sql = format!("SELECT ticket_id, kek_id, wrapped FROM personal_keys WHERE ticket_id IN ({marks})");
                let mut query = sqlx::query_as(&sql);
                for ticket in tickets {
                    query = query.bind(*ticket);
                }
                query.fetch_all(read).await
            }
            Database::Postgres(pool) => {
                sqlx::query_as("SELECT ticket_id, kek_id, wrapped FROM personal_keys WHERE ticket_id = ANY($1)")
                    .bind(tickets)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(store_error)
    }

    /// The key new personal data of `ticket` is sealed with, made on first use.
    async fn key_for_writing(&self, ticket: Uuid) -> Result<Arc<XChaCha20Poly1305>, StoreError> {
        match self.entries(&[ticket]).await?.remove(&ticket) {
            Some(Entry::Live(key)) => return Ok(key),
            Some(Entry::Erased) => {
                return Err(StoreError::InvalidInput(format!(
                    "ticket {ticket}'s personal data was erased: nothing personal can be added to it"
                )));
            }
            _ => {}
        }
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *bytes);
        let keks = self.keks();
        let kek = keks.current();
        let wrapped = kek.wrap(ticket, &bytes);
        // Two writers may race to make the first key: one row wins, both use it.
        let insert = "INSERT INTO personal_keys (ticket_id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4) \
                      ON CONFLICT (ticket_id) DO NOTHING";
        match &self.database {
            Database::Sqlite { write, .. } => sqlx::query(insert)
                .bind(ticket)
                .bind(&kek.id)
                .bind(&wrapped)
                .bind(now_us())
                .execute(write)
                .await
                .map(|r| r.rows_affected()),
            Database::Postgres(pool) => sqlx::query(insert)
                .bind(ticket)
                .bind(&kek.id)
                .bind(&wrapped)
                .bind(now_us())
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(store_error)?;
        self.cache.lock().expect("key cache lock").pop(&ticket);
        let row = self
            .read_rows(&[ticket])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Database(format!("the data key of ticket {ticket} was not stored")))?;
        match self.entry_of(&keks, row)? {
            Entry::Live(key) => {
                self.remember(ticket, Entry::Live(key.clone()));
                Ok(key)
            }
            _ => Err(StoreError::InvalidInput(format!("ticket {ticket}'s personal data was erased"))),
        }
    }

    /// Seals the `personal` part of events about to be appended to a ticket's stream.
    pub async fn seal(
        &self,
        ticket: Uuid,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &mut [NewEvent],
    ) -> Result<(), StoreError> {
        let mut key = None;
        for (index, event) in events.iter_mut().enumerate() {
            let mut payload: Value = event.payload.to_value();
            let Some(personal) = payload.get("personal").filter(|p| p.is_object()) else { continue };
            let key = match &key {
                Some(key) => key,
                None => key.insert(self.key_for_writing(ticket).await?),
            };
            let version = expected.0 + index as u64 + 1;
            let plain = serde_json::to_vec(personal).expect("JSON serialises");
            let mut nonce = [0u8; 24];
            OsRng.fill_bytes(&mut nonce);
            let aad = associated_data(event.event_id, stream, version);
            let sealed = key
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: aad.as_bytes() })
                .map_err(|_| StoreError::Database("sealing personal data failed".into()))?;
            let mut bytes = nonce.to_vec();
            bytes.extend(sealed);
            let text = format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes));
            payload["personal"] = Value::String(text);
            event.payload = Json::from_value(&payload);
        }
        Ok(())
    }

    /// The payload `event` would be stored with had it been sealed on append: `None` when it
    /// holds no personal part in the clear (already sealed, or none). For `ticketd migrate`,
    /// which seals events stored before sealing existed.
    pub async fn seal_stored(&self, event: &RecordedEvent) -> Result<Option<Json>, StoreError> {
        let Some(ticket) = ticket_of(&event.stream_id) else { return Ok(None) };
        if !event.payload.to_value().get("personal").is_some_and(Value::is_object) {
            return Ok(None);
        }
        let mut as_new = [NewEvent {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            metadata: event.metadata.clone(),
            payload: Json::from_value(&event.payload.to_value()),
        }];
        self.seal(ticket, &event.stream_id, ExpectedVersion(event.version - 1), &mut as_new).await?;
        let [sealed] = as_new;
        Ok(Some(sealed.payload))
    }

    /// Opens the sealed personal parts of stored events (an erased ticket's read as erased).
    pub async fn open(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        let tickets: Vec<Uuid> = events
            .iter()
            .filter(|e| e.payload.get().contains(SEALED_PREFIX))
            .filter_map(|e| ticket_of(&e.stream_id))
            .collect();
        if tickets.is_empty() {
            return Ok(events);
        }
        let keys = self.entries(&tickets).await?;
        for event in &mut events {
            let Some(ticket) = ticket_of(&event.stream_id) else { continue };
            let Some(entry) = keys.get(&ticket) else { continue };
            let corrupt = |reason: String| StoreError::Corrupt { position: event.position.0, reason };
            let mut payload: Value = event.payload.to_value();
            let Some(Value::String(sealed)) = payload.get("personal") else { continue };
            let Some(encoded) = sealed.strip_prefix(SEALED_PREFIX) else { continue };
            let opened = match entry {
                Entry::Live(key) => {
                    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(encoded)
                        .map_err(|_| corrupt("its sealed personal data is not base64".into()))?;
                    if bytes.len() < 24 {
                        return Err(corrupt("its sealed personal data is cut short".into()));
                    }
                    let (nonce, ciphertext) = bytes.split_at(24);
                    let aad = associated_data(event.event_id, &event.stream_id, event.version);
                    let plain = key
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
                        .map_err(|_| {
                            corrupt(
                                "its sealed personal data does not open (altered, or moved from another event)".into(),
                            )
                        })?;
                    serde_json::from_slice(&plain)
                        .map_err(|e| corrupt(format!("its personal data is not JSON: {e}")))?
                }
                Entry::Erased => ticket_domain::event::erased_personal(&event.event_type).ok_or_else(|| {
                    corrupt(format!("{} carries no personal data, yet a sealed part", event.event_type))
                })?,
                Entry::None => {
                    return Err(corrupt(format!("ticket {ticket} has sealed personal data but no data key")));
                }
            };
            payload["personal"] = opened;
            event.payload = Json::from_value(&payload);
        }
        Ok(events)
    }

    /// Destroys the ticket's data key: every sealed personal part of it is unreadable from
    /// now on, for good. True when a live key was destroyed now.
    pub async fn erase(&self, ticket: Uuid) -> Result<bool, StoreError> {
        let sql = "UPDATE personal_keys SET kek_id = NULL, wrapped = NULL, erased_at = $1 \
                   WHERE ticket_id = $2 AND erased_at IS NULL";
        let now = now_us();
        let erased = match &self.database {
            Database::Sqlite { write, .. } => {
                let mut connection = write.acquire().await.map_err(store_error)?;
                // The freed bytes of the destroyed key are overwritten, not left in free pages.
                sqlx::query("PRAGMA secure_delete = ON").execute(&mut *connection).await.map_err(store_error)?;
                let done =
                    sqlx::query(sql).bind(now).bind(ticket).execute(&mut *connection).await.map(|r| r.rows_affected());
                let _ = sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *connection).await;
                done
            }
            Database::Postgres(pool) => {
                sqlx::query(sql).bind(now).bind(ticket).execute(pool).await.map(|r| r.rows_affected())
            }
        }
        .map_err(store_error)?
            > 0;
        if !erased {
            // A ticket with no key yet (all its events older than sealing) gets an erased row,
            // so that nothing personal is sealed for it later.
            let insert = "INSERT INTO personal_keys (ticket_id, created_at, erased_at) VALUES ($1, $2, $2) \
                          ON CONFLICT (ticket_id) DO NOTHING";
            match &self.database {
                Database::Sqlite { write, .. } => {
                    sqlx::query(insert).bind(ticket).bind(now).execute(write).await.map(|r| r.rows_affected())
                }
                Database::Postgres(pool) => {
                    sqlx::query(insert).bind(ticket).bind(now).execute(pool).await.map(|r| r.rows_affected())
                }
            }
            .map_err(store_error)?;
        }
        self.remember(ticket, Entry::Erased);
        Ok(erased)
    }

    /// Whether the ticket's data key is destroyed.
    pub async fn is_erased(&self, ticket: Uuid) -> Result<bool, StoreError> {
        Ok(matches!(self.entries(&[ticket]).await?.get(&ticket), Some(Entry::Erased)))
    }

    /// Re-wraps every live data key under the current key-encryption key; returns how many.
    pub async fn rewrap_all(&self) -> Result<u64, StoreError> {
        let keks = self.keks();
        let current = keks.current();
        let mut done = 0;
        loop {
            let sql = "SELECT ticket_id, kek_id, wrapped FROM personal_keys \
                       WHERE kek_id IS NOT NULL AND kek_id <> $1 LIMIT 1000";
            let rows: Vec<KeyRow> = match &self.database {
                Database::Sqlite { read, .. } => sqlx::query_as(sql).bind(&current.id).fetch_all(read).await,
                Database::Postgres(pool) => sqlx::query_as(sql).bind(&current.id).fetch_all(pool).await,
            }
            .map_err(store_error)?;
            if rows.is_empty() {
                return Ok(done);
            }
            for (ticket, kek_id, wrapped) in rows {
                let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else { continue };
                let old =
                    keks.get(&kek_id).ok_or_else(|| kek_error(KekError::Unknown { ticket, kek_id: kek_id.clone() }))?;
                let key = old.unwrap(ticket, &wrapped).map_err(kek_error)?;
                let rewrapped = current.wrap(ticket, &key);
                let update = "UPDATE personal_keys SET kek_id = $1, wrapped = $2 \
                              WHERE ticket_id = $3 AND kek_id = $4 AND erased_at IS NULL";
                match &self.database {
                    Database::Sqlite { write, .. } => sqlx::query(update)
                        .bind(&current.id)
                        .bind(&rewrapped)
                        .bind(ticket)
                        .bind(&kek_id)
                        .execute(write)
                        .await
                        .map(|r| r.rows_affected()),
                    Database::Postgres(pool) => sqlx::query(update)
                        .bind(&current.id)
                        .bind(&rewrapped)
                        .bind(ticket)
                        .bind(&kek_id)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected()),
                }
                .map_err(store_error)?;
                done += 1;
            }
        }
    }
}

fn associated_data(event_id: Uuid, stream: &StreamId, version: u64) -> String {
    format!("ticketd personal v1\n{event_id}\n{stream}\n{version}")
}

fn ticket_of(stream: &StreamId) -> Option<Uuid> {
    let id = stream.as_str().strip_prefix(ticket_domain::vocabulary::TicketId::STREAM_PREFIX)?;
    Uuid::parse_str(id).ok()
}

/// The event store as the service sees it: personal parts sealed on append, opened on read.
pub struct SealedStore {
    inner: SharedStore,
    vault: Arc<Vault>,
}

impl SealedStore {
    pub fn new(inner: SharedStore, vault: Arc<Vault>) -> Self {
        Self { inner, vault }
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }
}

#[async_trait::async_trait]
impl EventStore for SealedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(ticket) = ticket_of(stream) {
            self.vault.seal(ticket, stream, expected, &mut events).await?;
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream, after_version, limit).await?;
        self.vault.open(events).await
    }

    async fn read_all(&self, after: GlobalPosition, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_all(after, limit).await?;
        self.vault.open(events).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn next_sequence_value(&self, sequence: Sequence) -> Result<u64, StoreError> {
        self.inner.next_sequence_value(sequence).await
    }

    fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.appended()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn oldest_append_in_flight(&self) -> Option<event_store::AppendInFlight> {
        self.inner.oldest_append_in_flight()
    }
}
