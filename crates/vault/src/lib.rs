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

/// The prefix of a sealed personal part (the format's name and version); then the data key's
/// id (32 hex digits), a dot, and base64 of nonce ‖ ciphertext.
pub const SEALED_PREFIX: &str = "xc20p1.";

/// How long a data key read from the database is trusted before it is read again: another
/// instance sharing the database may have destroyed it meanwhile (an erasure recorded in the
/// log is honoured at once wherever it is read, see [`Vault::open`]).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

const KEY_CACHE_MAX: usize = 100_000;

/// New data keys are made this many at a time, in one transaction, and handed to new tickets
/// from memory: a ticket's first event needs no write of its own.
const KEY_POOL_BATCH: usize = 256;

/// Runs the vault's migration.
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    let result = match database {
        Database::Sqlite { write, .. } => event_store::migrator(sqlx::migrate!("./migrations/sqlite")).run(write).await,
        Database::Postgres(pool) => event_store::migrator(sqlx::migrate!("./migrations/postgres")).run(pool).await,
    };
    result.map_err(|e| StoreError::Database(format!("migrating the data keys: {e}")))
}

/// A data key as the vault knows it.
#[derive(Clone)]
enum Entry {
    Live(Arc<XChaCha20Poly1305>),
    Erased,
}

/// The data keys: made ahead in batches, unwrapped (and cached for a while), destroyed.
pub struct Vault {
    database: Database,
    keks: RwLock<Arc<Keks>>,
    /// Data keys by key id. A std mutex: held for a lookup or an insert, never across an await.
    cache: Mutex<lru::LruCache<Uuid, (Instant, Entry)>>,
    /// Each ticket's data key id, as its events name it.
    ticket_keys: Mutex<lru::LruCache<Uuid, Uuid>>,
    /// Tickets whose erasure this instance has seen.
    erased: Mutex<lru::LruCache<Uuid, ()>>,
    /// Stored keys no ticket has taken yet (this instance's own: never handed out twice).
    pool: Mutex<Vec<(Uuid, Arc<XChaCha20Poly1305>)>>,
    refill: tokio::sync::Mutex<()>,
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

fn lru<K: std::hash::Hash + Eq, V>() -> Mutex<lru::LruCache<K, V>> {
    Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(KEY_CACHE_MAX).expect("not zero")))
}

/// The data key id a sealed part names, and its sealed bytes (base64).
fn parse_sealed(text: &str) -> Option<(Uuid, &str)> {
    let rest = text.strip_prefix(SEALED_PREFIX)?;
    let (key, sealed) = rest.split_once('.')?;
    Some((Uuid::try_parse(key).ok()?, sealed))
}

impl Vault {
    pub fn new(database: Database, keks: Keks) -> Self {
        Self {
            database,
            keks: RwLock::new(Arc::new(keks)),
            cache: lru(),
            ticket_keys: lru(),
            erased: lru(),
            pool: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    fn keks(&self) -> Arc<Keks> {
        self.keks.read().expect("keks lock").clone()
    }

    /// Refuses to run with a key file that cannot unwrap every live data key (a service started
    /// with the wrong file would otherwise show nothing personal, or seal with a second key).
    pub async fn check_keys(&self) -> Result<(), StoreError> {
        let ids = self.kek_ids_in_use().await?;
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

    /// The key-encryption key ids live data keys are wrapped by.
    pub async fn kek_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT DISTINCT kek_id FROM personal_keys WHERE kek_id IS NOT NULL";
        match &self.database {
            Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_all(read).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .map_err(store_error)
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

    fn cached(&self, key: Uuid) -> Option<Entry> {
        let mut cache = self.cache.lock().expect("key cache lock");
        match cache.get(&key) {
            Some((at, entry)) if matches!(entry, Entry::Erased) || at.elapsed() < KEY_CACHE_TTL => Some(entry.clone()),
            _ => None,
        }
    }

    fn remember(&self, key: Uuid, entry: Entry) {
        self.cache.lock().expect("key cache lock").put(key, (Instant::now(), entry));
    }

    fn is_known_erased(&self, ticket: Uuid) -> bool {
        self.erased.lock().expect("erased lock").contains(&ticket)
    }

    fn entry_of(&self, keks: &Keks, (key, kek_id, wrapped): KeyRow) -> Result<Entry, StoreError> {
        let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else { return Ok(Entry::Erased) };
        let kek =
            keks.get(&kek_id).ok_or_else(|| kek_error(KekError::Unknown { ticket: key, kek_id: kek_id.clone() }))?;
        let bytes = kek.unwrap(key, &wrapped).map_err(kek_error)?;
        Ok(Entry::Live(Arc::new(XChaCha20Poly1305::new((&*bytes).into()))))
    }

    /// These data keys (cached ones, and the rest in one query); a key no row holds is absent.
    async fn entries(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Entry>, StoreError> {
        let mut found = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        for key in keys {
            if found.contains_key(key) || missing.contains(key) {
                continue;
            }
            match self.cached(*key) {
                Some(entry) => {
                    found.insert(*key, entry);
                }
                None => missing.push(*key),
            }
        }
        let keks = self.keks();
        for chunk in missing.chunks(500) {
            for row in self.read_rows(chunk).await? {
                let key = row.0;
                let entry = self.entry_of(&keks, row)?;
                self.remember(key, entry.clone());
                found.insert(key, entry);
            }
        }
        Ok(found)
    }

    async fn read_rows(&self, keys: &[Uuid]) -> Result<Vec<KeyRow>, StoreError> {
        match &self.database {
            Database::Sqlite { read, .. } => {
                let marks = vec!["?"; keys.len()].join(",");
                let sql = format!("SELECT key_id, kek_id, wrapped FROM personal_keys WHERE key_id IN ({marks})");
                let mut query = sqlx::query_as(&sql);
                for key in keys {
                    query = query.bind(*key);
                }
                query.fetch_all(read).await
            }
            Database::Postgres(pool) => {
                sqlx::query_as("SELECT key_id, kek_id, wrapped FROM personal_keys WHERE key_id = ANY($1)")
                    .bind(keys)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(store_error)
    }

    /// A stored data key no ticket has: from the pool, which is refilled a batch at a time.
    async fn take_key(&self) -> Result<(Uuid, Arc<XChaCha20Poly1305>), StoreError> {
        loop {
            if let Some(key) = self.pool.lock().expect("key pool lock").pop() {
                return Ok(key);
            }
            let _refilling = self.refill.lock().await;
            if !self.pool.lock().expect("key pool lock").is_empty() {
                continue;
            }
            let keks = self.keks();
            let kek = keks.current();
            let mut made = Vec::with_capacity(KEY_POOL_BATCH);
            let mut rows = Vec::with_capacity(KEY_POOL_BATCH);
            for _ in 0..KEY_POOL_BATCH {
                let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(&mut *bytes);
                let id = Uuid::new_v4();
                rows.push((id, kek.wrap(id, &bytes)));
                made.push((id, Arc::new(XChaCha20Poly1305::new((&*bytes).into()))));
            }
            self.insert_rows(&kek.id, &rows).await?;
            self.pool.lock().expect("key pool lock").extend(made);
        }
    }

    async fn insert_rows(&self, kek_id: &str, rows: &[(Uuid, Vec<u8>)]) -> Result<(), StoreError> {
        let now = now_us();
        match &self.database {
            Database::Sqlite { write, .. } => {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO personal_keys (key_id, kek_id, wrapped, created_at) ",
                );
                insert.push_values(rows, |mut values, (id, wrapped)| {
                    values.push_bind(*id).push_bind(kek_id).push_bind(wrapped).push_bind(now);
                });
                insert.build().execute(write).await.map(drop)
            }
            Database::Postgres(pool) => sqlx::query(
                "INSERT INTO personal_keys (key_id, kek_id, wrapped, created_at) \
                 SELECT id, $2, wrapped, $3 FROM UNNEST($1::uuid[], $4::bytea[]) AS k(id, wrapped)",
            )
            .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(kek_id)
            .bind(now)
            .bind(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
            .execute(pool)
            .await
            .map(drop),
        }
        .map_err(store_error)
    }

    /// The data key id the ticket's stored events name, if any does.
    async fn key_of_ticket(&self, ticket: Uuid) -> Result<Option<Uuid>, StoreError> {
        if let Some(key) = self.ticket_keys.lock().expect("ticket keys lock").get(&ticket).copied() {
            return Ok(Some(key));
        }
        let stream = format!("{}{ticket}", ticket_domain::vocabulary::TicketId::STREAM_PREFIX);
        let payload: Option<String> = match &self.database {
            Database::Sqlite { read, .. } => sqlx::query_scalar(
                "SELECT payload FROM events WHERE stream_id = ?1 AND payload LIKE '%\"xc20p1.%' ORDER BY version LIMIT 1",
            )
            .bind(&stream)
            .fetch_optional(read)
            .await,
            Database::Postgres(pool) => sqlx::query_scalar(
                "SELECT payload::text FROM events WHERE stream_id = $1 AND payload::text LIKE '%\"xc20p1.%' \
                 ORDER BY version LIMIT 1",
            )
            .bind(&stream)
            .fetch_optional(pool)
            .await,
        }
        .map_err(store_error)?;
        let key = payload
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|payload| payload.get("personal").and_then(Value::as_str).and_then(parse_sealed).map(|(k, _)| k));
        if let Some(key) = key {
            self.ticket_keys.lock().expect("ticket keys lock").put(ticket, key);
        }
        Ok(key)
    }

    /// Whether the ticket's data is erased (its tombstone row, or an erasure this instance saw).
    pub async fn is_erased(&self, ticket: Uuid) -> Result<bool, StoreError> {
        if self.is_known_erased(ticket) {
            return Ok(true);
        }
        let sql = "SELECT COUNT(*) FROM personal_keys WHERE ticket_id = $1 AND erased_at IS NOT NULL";
        let count: i64 = match &self.database {
            Database::Sqlite { read, .. } => sqlx::query_scalar(sql).bind(ticket).fetch_one(read).await,
            Database::Postgres(pool) => sqlx::query_scalar(sql).bind(ticket).fetch_one(pool).await,
        }
        .map_err(store_error)?;
        if count > 0 {
            self.erased.lock().expect("erased lock").put(ticket, ());
        }
        Ok(count > 0)
    }

    /// The key new personal data of `ticket` is sealed with. `new`: the append makes the
    /// stream, so it takes a fresh key from the pool without a lookup.
    async fn key_for_writing(&self, ticket: Uuid, new: bool) -> Result<(Uuid, Arc<XChaCha20Poly1305>), StoreError> {
        let refused = || {
            StoreError::InvalidInput(format!(
                "ticket {ticket}'s personal data was erased: nothing personal can be added to it"
            ))
        };
        if self.is_known_erased(ticket) {
            return Err(refused());
        }
        if !new {
            // Its key (from memory, usually), whose row says whether it was destroyed.
            if let Some(key) = self.key_of_ticket(ticket).await? {
                return match self.entries(&[key]).await?.remove(&key) {
                    Some(Entry::Live(cipher)) => Ok((key, cipher)),
                    Some(Entry::Erased) => Err(refused()),
                    None => Err(StoreError::Database(format!("ticket {ticket}'s data key {key} is not stored"))),
                };
            }
            // No key yet (its events all older than sealing): erased only by a tombstone.
            if self.is_erased(ticket).await? {
                return Err(refused());
            }
        }
        let (key, cipher) = self.take_key().await?;
        self.remember(key, Entry::Live(cipher.clone()));
        self.ticket_keys.lock().expect("ticket keys lock").put(ticket, key);
        Ok((key, cipher))
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
            // Most events carry nothing personal: not parsed at all.
            if !event.payload.get().contains("\"personal\"") {
                continue;
            }
            let mut payload: Value = event.payload.to_value();
            let Some(personal) = payload.get("personal").filter(|p| p.is_object()) else { continue };
            let (key_id, cipher) = match &key {
                Some(key) => key,
                None => key.insert(self.key_for_writing(ticket, expected.0 == 0).await?),
            };
            let version = expected.0 + index as u64 + 1;
            let plain = serde_json::to_vec(personal).expect("JSON serialises");
            let mut nonce = [0u8; 24];
            OsRng.fill_bytes(&mut nonce);
            let aad = associated_data(event.event_id, stream, version);
            let sealed = cipher
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: aad.as_bytes() })
                .map_err(|_| StoreError::Database("sealing personal data failed".into()))?;
            let mut bytes = nonce.to_vec();
            bytes.extend(sealed);
            let text = format!(
                "{SEALED_PREFIX}{}.{}",
                key_id.simple(),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
            );
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
        // An erasure recorded (perhaps by another instance, whose destroyed key this one may
        // still have cached) erases at once wherever it is read, the events before it included.
        for event in events.iter().filter(|e| e.event_type == "PersonalDataErased") {
            if let Some(ticket) = ticket_of(&event.stream_id) {
                self.erased.lock().expect("erased lock").put(ticket, ());
            }
        }
        let sealed_key = |event: &RecordedEvent| -> Option<Uuid> {
            let text = event.payload.get();
            let at = text.find(SEALED_PREFIX)?;
            let id = text.get(at + SEALED_PREFIX.len()..at + SEALED_PREFIX.len() + 32)?;
            Uuid::try_parse(id).ok()
        };
        let keys: Vec<Uuid> = events.iter().filter_map(sealed_key).collect();
        if keys.is_empty() {
            return Ok(events);
        }
        let found = self.entries(&keys).await?;
        for event in &mut events {
            if sealed_key(event).is_none() {
                continue;
            }
            let corrupt = |reason: String| StoreError::Corrupt { position: event.position.0, reason };
            let mut payload: Value = event.payload.to_value();
            let Some(Value::String(text)) = payload.get("personal") else { continue };
            let (key, encoded) =
                parse_sealed(text).ok_or_else(|| corrupt("its sealed personal data is malformed".into()))?;
            let erased = ticket_of(&event.stream_id).is_some_and(|t| self.is_known_erased(t));
            let opened = match (found.get(&key), erased) {
                (Some(Entry::Erased), _) | (Some(Entry::Live(_)), true) => {
                    ticket_domain::event::erased_personal(&event.event_type).ok_or_else(|| {
                        corrupt(format!("{} carries no personal data, yet a sealed part", event.event_type))
                    })?
                }
                (Some(Entry::Live(cipher)), false) => {
                    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(encoded)
                        .map_err(|_| corrupt("its sealed personal data is not base64".into()))?;
                    if bytes.len() < 24 {
                        return Err(corrupt("its sealed personal data is cut short".into()));
                    }
                    let (nonce, ciphertext) = bytes.split_at(24);
                    let aad = associated_data(event.event_id, &event.stream_id, event.version);
                    let plain = cipher
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
                        .map_err(|_| {
                            corrupt(
                                "its sealed personal data does not open (altered, or moved from another event)".into(),
                            )
                        })?;
                    serde_json::from_slice(&plain)
                        .map_err(|e| corrupt(format!("its personal data is not JSON: {e}")))?
                }
                (None, _) => return Err(corrupt(format!("its data key {key} is not stored"))),
            };
            payload["personal"] = opened;
            event.payload = Json::from_value(&payload);
        }
        Ok(events)
    }

    /// Destroys the ticket's data key: every sealed personal part of it is unreadable from
    /// now on, for good; and leaves its tombstone, so that nothing personal is sealed for it
    /// again. True when a live key was destroyed now.
    pub async fn erase(&self, ticket: Uuid) -> Result<bool, StoreError> {
        self.ticket_keys.lock().expect("ticket keys lock").pop(&ticket);
        let key = self.key_of_ticket(ticket).await?;
        let now = now_us();
        let destroy = "UPDATE personal_keys SET kek_id = NULL, wrapped = NULL, erased_at = $1, ticket_id = $2 \
                       WHERE key_id = $3 AND erased_at IS NULL";
        // The tombstone: a row of its own when the ticket had no key (all its events older than
        // sealing), so that its erasure is known to every instance.
        let tombstone = "INSERT INTO personal_keys (key_id, ticket_id, created_at, erased_at) VALUES ($1, $2, $3, $3)";
        let tomb_id = Uuid::new_v5(&ticket, b"ticketd/erased");
        let destroyed = match &self.database {
            Database::Sqlite { write, .. } => {
                // The store's writer has `secure_delete` on: the destroyed key's bytes are zeroed.
                let mut connection = write.acquire().await.map_err(store_error)?;
                let done = match key {
                    Some(key) => sqlx::query(destroy)
                        .bind(now)
                        .bind(ticket)
                        .bind(key)
                        .execute(&mut *connection)
                        .await
                        .map(|r| r.rows_affected()),
                    None => Ok(0),
                };
                let destroyed = done.map_err(store_error)? > 0;
                if !destroyed {
                    sqlx::query(&format!("{tombstone} ON CONFLICT (key_id) DO NOTHING"))
                        .bind(tomb_id)
                        .bind(ticket)
                        .bind(now)
                        .execute(&mut *connection)
                        .await
                        .map_err(store_error)?;
                }
                destroyed
            }
            Database::Postgres(pool) => {
                let done = match key {
                    Some(key) => sqlx::query(destroy)
                        .bind(now)
                        .bind(ticket)
                        .bind(key)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(store_error)?,
                    None => 0,
                };
                if done == 0 {
                    sqlx::query(&format!("{tombstone} ON CONFLICT (key_id) DO NOTHING"))
                        .bind(tomb_id)
                        .bind(ticket)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map_err(store_error)?;
                }
                done > 0
            }
        };
        if let Some(key) = key {
            self.remember(key, Entry::Erased);
        }
        self.erased.lock().expect("erased lock").put(ticket, ());
        Ok(destroyed)
    }

    /// Re-wraps every live data key under the current key-encryption key; returns how many.
    pub async fn rewrap_all(&self) -> Result<u64, StoreError> {
        let keks = self.keks();
        let current = keks.current();
        let mut done = 0;
        loop {
            let sql = "SELECT key_id, kek_id, wrapped FROM personal_keys \
                       WHERE kek_id IS NOT NULL AND kek_id <> $1 LIMIT 1000";
            let rows: Vec<KeyRow> = match &self.database {
                Database::Sqlite { read, .. } => sqlx::query_as(sql).bind(&current.id).fetch_all(read).await,
                Database::Postgres(pool) => sqlx::query_as(sql).bind(&current.id).fetch_all(pool).await,
            }
            .map_err(store_error)?;
            if rows.is_empty() {
                return Ok(done);
            }
            for (key, kek_id, wrapped) in rows {
                let (Some(kek_id), Some(wrapped)) = (kek_id, wrapped) else { continue };
                let old = keks
                    .get(&kek_id)
                    .ok_or_else(|| kek_error(KekError::Unknown { ticket: key, kek_id: kek_id.clone() }))?;
                let bytes = old.unwrap(key, &wrapped).map_err(kek_error)?;
                let rewrapped = current.wrap(key, &bytes);
                let update = "UPDATE personal_keys SET kek_id = $1, wrapped = $2 \
                              WHERE key_id = $3 AND kek_id = $4 AND erased_at IS NULL";
                match &self.database {
                    Database::Sqlite { write, .. } => sqlx::query(update)
                        .bind(&current.id)
                        .bind(&rewrapped)
                        .bind(key)
                        .bind(&kek_id)
                        .execute(write)
                        .await
                        .map(drop),
                    Database::Postgres(pool) => sqlx::query(update)
                        .bind(&current.id)
                        .bind(&rewrapped)
                        .bind(key)
                        .bind(&kek_id)
                        .execute(pool)
                        .await
                        .map(drop),
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
