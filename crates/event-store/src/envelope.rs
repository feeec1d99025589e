//! The event envelope: what the store keeps around each payload.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The name of a stream (`ticket-<uuid>`): 1 to 200 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub const CHARS_MAX: usize = 200;

    pub fn parse(value: &str) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if value.is_empty() || value.len() > Self::CHARS_MAX || !value.chars().all(valid_char) {
            return Err(format!("'{value}' is not a stream id (1-{} of [A-Za-z0-9_.:-])", Self::CHARS_MAX));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version a stream must be at for an append to go through: the number of events in it
/// (0 for a stream that does not exist yet). There is no "any version": every append says
/// what it decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpectedVersion(pub u64);

impl ExpectedVersion {
    pub const NO_STREAM: Self = Self(0);
}

/// A place in the global order of all events. Increasing, unique, not dense: backends may
/// leave gaps between positions, but never fill one in later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GlobalPosition(pub i64);

impl GlobalPosition {
    /// Before every event.
    pub const START: Self = Self(0);
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A JSON document as stored: its text, parsed only when asked. The store guarantees it is
/// valid JSON (SQLite checks `json_valid` on insert; PostgreSQL stores `jsonb`), so reading
/// an event does not parse its payload twice. PostgreSQL's `jsonb` does not keep whitespace
/// or key order, so equality is by meaning (parsed values), not by text.
#[derive(Debug, Clone)]
pub struct Json(String);

impl Json {
    pub fn from_value(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }
    /// Wraps text that must be JSON; checked.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Self(text))
    }
    /// Wraps JSON serde has already checked (a `RawValue` read from a larger document).
    pub fn from_raw(raw: &serde_json::value::RawValue) -> Self {
        Self(raw.get().to_owned())
    }
    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).expect("Json holds valid JSON")
    }
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

/// Who caused an event and in answer to what, as opaque JSON for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMetadata {
    pub actor: Json,
    /// Ties together everything one request or process caused.
    pub correlation_id: Uuid,
    /// The event or request that directly caused this one.
    pub causation_id: Option<Uuid>,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// A UUIDv7; the same id appended twice is stored once.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// When it happened, by the application's clock.
    pub occurred_at: DateTime<Utc>,
    pub metadata: EventMetadata,
    pub payload: Json,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: GlobalPosition,
    pub stream_id: StreamId,
    /// 1 for a stream's first event, then +1 per event.
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    /// When the store committed it, by the store's clock.
    pub recorded_at: DateTime<Utc>,
    pub metadata: EventMetadata,
    pub payload: Json,
}

/// Where an append put its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append: the next append's expected version.
    pub version: u64,
    /// The events' positions, in append order.
    pub positions: Vec<GlobalPosition>,
    pub recorded_at: DateTime<Utc>,
    /// True when these events were already stored by an earlier identical append.
    pub already_stored: bool,
}

impl AppendOutcome {
    pub(crate) fn from_recorded(events: &[RecordedEvent], already_stored: bool) -> Self {
        Self {
            version: events.last().map_or(0, |e| e.version),
            positions: events.iter().map(|e| e.position).collect(),
            recorded_at: events.last().map_or_else(Utc::now, |e| e.recorded_at),
            already_stored,
        }
    }
}

/// Named counters the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    TicketNumber,
}

impl Sequence {
    pub fn name(self) -> &'static str {
        match self {
            Self::TicketNumber => "ticket_number",
        }
    }
}

pub(crate) fn micros_to_time(micros: i64, position: i64) -> Result<DateTime<Utc>, crate::StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| crate::StoreError::Corrupt { position, reason: format!("timestamp {micros} out of range") })
}

/// Text read back from a JSON column, which the database has already checked.
pub(crate) fn raw_json(text: String, _position: i64) -> Result<Json, crate::StoreError> {
    Ok(Json(text))
}

/// One event of a page read as one JSON document (both backends read the global order so:
/// one row per page, not per event). Fields: position, stream, version, event id, type, schema
/// version, occurred-at and recorded-at (µs), actor, correlation id, causation id, payload.
#[derive(serde::Deserialize)]
pub(crate) struct PageRow<'a>(
    i64,
    String,
    i64,
    &'a str,
    String,
    i64,
    i64,
    i64,
    &'a serde_json::value::RawValue,
    &'a str,
    Option<&'a str>,
    &'a serde_json::value::RawValue,
);

impl PageRow<'_> {
    pub(crate) fn into_recorded(self) -> Result<RecordedEvent, crate::StoreError> {
        let position = self.0;
        let corrupt = |reason: String| crate::StoreError::Corrupt { position, reason };
        let uuid = |hex: &str| uuid::Uuid::try_parse(hex).map_err(|e| corrupt(format!("uuid {hex}: {e}")));
        Ok(RecordedEvent {
            position: GlobalPosition(position),
            stream_id: StreamId::parse(&self.1).map_err(corrupt)?,
            version: self.2 as u64,
            event_id: uuid(self.3)?,
            event_type: self.4,
            schema_version: self.5 as u32,
            occurred_at: micros_to_time(self.6, position)?,
            recorded_at: micros_to_time(self.7, position)?,
            metadata: EventMetadata {
                actor: raw_json(self.8.get().to_owned(), position)?,
                correlation_id: uuid(self.9)?,
                causation_id: match self.10 {
                    Some(hex) if !hex.is_empty() => Some(uuid(hex)?),
                    _ => None,
                },
            },
            payload: raw_json(self.11.get().to_owned(), position)?,
        })
    }
}
