//! The canonical form of a stored event: what a ledger leaf commits to.
//!
//! A leaf's data is the RFC 8785 (JCS) serialisation of [`LeafEvent`]: every field of the
//! envelope and the payload as stored. JCS sorts keys and fixes the text of strings and numbers,
//! so the bytes are the same whether the event was read back from SQLite's text or from
//! PostgreSQL's `jsonb` (which reorders keys and drops whitespace). The leaf hash is RFC 6962's:
//! `SHA-256(0x00 || data)`.

use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Hash;

/// The version of this encoding, carried in every leaf (`ledger`).
pub const LEAF_FORMAT: u32 = 1;

/// A stored event as the ledger sees it. The position is a decimal string (PostgreSQL's
/// positions exceed what a JSON number keeps exactly in other languages); times are RFC 3339
/// in UTC with exactly six fractional digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeafEvent {
    pub ledger: u32,
    pub position: String,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: String,
    pub recorded_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub actor: serde_json::Value,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

/// An instant as a leaf writes it.
pub fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl LeafEvent {
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            ledger: LEAF_FORMAT,
            position: event.position.0.to_string(),
            stream: event.stream_id.as_str().to_owned(),
            version: event.version,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            occurred_at: instant_text(event.occurred_at),
            recorded_at: instant_text(event.recorded_at),
            actor: event.metadata.actor.to_value(),
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            payload: event.payload.to_value(),
        }
    }

    /// The leaf's data: RFC 8785 canonical JSON (the members in JCS order, written directly:
    /// a general canonicaliser cost 25 µs an event, this under 2).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let text = |out: &mut Vec<u8>, value: &str| write_string(out, value);
        let uuid = |out: &mut Vec<u8>, id: &Uuid| {
            out.push(b'"');
            out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
            out.push(b'"');
        };
        out.extend_from_slice(b"{\"actor\":");
        write_canonical(&mut out, &self.actor);
        out.extend_from_slice(b",\"causation_id\":");
        match &self.causation_id {
            Some(id) => uuid(&mut out, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"correlation_id\":");
        uuid(&mut out, &self.correlation_id);
        out.extend_from_slice(b",\"event_id\":");
        uuid(&mut out, &self.event_id);
        out.extend_from_slice(b",\"event_type\":");
        text(&mut out, &self.event_type);
        out.extend_from_slice(format!(",\"ledger\":{},\"occurred_at\":", self.ledger).as_bytes());
        text(&mut out, &self.occurred_at);
        out.extend_from_slice(b",\"payload\":");
        write_canonical(&mut out, &self.payload);
        out.extend_from_slice(b",\"position\":");
        text(&mut out, &self.position);
        out.extend_from_slice(b",\"recorded_at\":");
        text(&mut out, &self.recorded_at);
        out.extend_from_slice(format!(",\"schema_version\":{},\"stream\":", self.schema_version).as_bytes());
        text(&mut out, &self.stream);
        out.extend_from_slice(format!(",\"version\":{}}}", self.version).as_bytes());
        out
    }

    /// The RFC 6962 leaf hash of [`Self::canonical_bytes`].
    pub fn leaf_hash(&self) -> Hash {
        tlog_tiles::record_hash(&self.canonical_bytes())
    }

    /// The position as a number (bundles carry it as text).
    pub fn position_number(&self) -> Option<i64> {
        self.position.parse().ok()
    }
}

/// A JSON string as JCS writes it (ECMAScript's `JSON.stringify`: `"` and `\\` escaped, control
/// characters as `\b \f \n \r \t` or `\u00xx`, everything else as it is) — which is serde_json's.
fn write_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("writing to memory does not fail");
}

/// RFC 8785 canonical JSON of a value: no white space, object members sorted by their names'
/// UTF-16 code units, numbers as ECMAScript prints them.
pub fn write_canonical(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // RFC 8785 numbers are IEEE doubles (an integer beyond 2^53 is rounded, which is why the
        // leaf's position is a string).
        Value::Number(number) => {
            let float = number.as_f64().unwrap_or(0.0);
            out.extend_from_slice(ryu_js::Buffer::new().format(float).as_bytes());
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            // serde_json's map is ordered by UTF-8 bytes, which is UTF-16 order except where
            // characters beyond U+FFFF meet U+E000–U+FFFF: only then sort again.
            let mut names: Vec<&String> = members.keys().collect();
            if names.iter().any(|name| name.chars().any(|c| c > '\u{D7FF}')) {
                names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            }
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, name);
                out.push(b':');
                write_canonical(out, &members[name.as_str()]);
            }
            out.push(b'}');
        }
    }
}

/// The leaf hash of a stored event, canonicalised from the stored JSON text directly (the same
/// bytes as [`LeafEvent::canonical_bytes`], without building values: `verify` hashes millions).
pub fn leaf_hash(event: &RecordedEvent) -> Hash {
    tlog_tiles::record_hash(&canonical_bytes_of(event))
}

/// [`LeafEvent::canonical_bytes`] of a stored event, from its text.
pub fn canonical_bytes_of(event: &RecordedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + event.payload.get().len());
    write_leaf(&mut out, &StoredParts::of(event));
    out
}

/// A stored event's fields as a reader holds them, borrowed: what [`write_leaf`] encodes.
/// `verify` fills one from each database row without building a [`RecordedEvent`].
#[derive(Debug, Clone, Copy)]
pub struct StoredParts<'a> {
    pub position: i64,
    pub stream: &'a str,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// The actor's stored JSON text.
    pub actor: &'a str,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// The payload's stored JSON text.
    pub payload: &'a str,
}

impl<'a> StoredParts<'a> {
    pub fn of(event: &'a RecordedEvent) -> Self {
        Self {
            position: event.position.0,
            stream: event.stream_id.as_str(),
            version: event.version,
            event_id: event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            occurred_at: event.occurred_at,
            recorded_at: event.recorded_at,
            actor: event.metadata.actor.get(),
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            payload: event.payload.get(),
        }
    }

    /// The leaf hash, with `scratch` as the encoding's buffer (cleared first).
    pub fn leaf_hash(&self, scratch: &mut Vec<u8>) -> Hash {
        scratch.clear();
        write_leaf(scratch, self);
        tlog_tiles::record_hash(scratch)
    }
}

/// An instant as [`instant_text`] writes it, quoted, written without building a string for
/// the years 0–9999 (chrono's text for the others).
fn write_instant(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    if !(0..=9999).contains(&year) {
        out.push(b'"');
        out.extend_from_slice(instant_text(at).as_bytes());
        out.push(b'"');
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    out.push(b'"');
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, at.month(), 2);
    out.push(b'-');
    digits(out, at.day(), 2);
    out.push(b'T');
    digits(out, at.hour(), 2);
    out.push(b':');
    digits(out, at.minute(), 2);
    out.push(b':');
    // A leap second's nanoseconds run past 10⁹; chrono writes it as second 60.
    let nanos = at.nanosecond();
    digits(out, at.second() + nanos / 1_000_000_000, 2);
    out.push(b'.');
    digits(out, nanos % 1_000_000_000 / 1_000, 6);
    out.extend_from_slice(b"Z\"");
}

/// Appends [`LeafEvent::canonical_bytes`] of a stored event to `out`, from its parts.
pub fn write_leaf(out: &mut Vec<u8>, event: &StoredParts<'_>) {
    let uuid = |out: &mut Vec<u8>, id: &Uuid| {
        out.push(b'"');
        out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
        out.push(b'"');
    };
    let stored = |out: &mut Vec<u8>, json: &str| {
        let start = out.len();
        if write_canonical_text(out, json).is_err() {
            // The store guarantees valid JSON; should it not be, the value route says the same.
            out.truncate(start);
            let value: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
            write_canonical(out, &value);
        }
    };
    let number = |out: &mut Vec<u8>, n: u64| out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"{\"actor\":");
    stored(out, event.actor);
    out.extend_from_slice(b",\"causation_id\":");
    match &event.causation_id {
        Some(id) => uuid(out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"correlation_id\":");
    uuid(out, &event.correlation_id);
    out.extend_from_slice(b",\"event_id\":");
    uuid(out, &event.event_id);
    out.extend_from_slice(b",\"event_type\":");
    write_string(out, event.event_type);
    out.extend_from_slice(b",\"ledger\":");
    number(out, LEAF_FORMAT as u64);
    out.extend_from_slice(b",\"occurred_at\":");
    write_instant(out, event.occurred_at);
    out.extend_from_slice(b",\"payload\":");
    stored(out, event.payload);
    out.extend_from_slice(b",\"position\":\"");
    out.extend_from_slice(itoa::Buffer::new().format(event.position).as_bytes());
    out.extend_from_slice(b"\",\"recorded_at\":");
    write_instant(out, event.recorded_at);
    out.extend_from_slice(b",\"schema_version\":");
    number(out, event.schema_version as u64);
    out.extend_from_slice(b",\"stream\":");
    write_string(out, event.stream);
    out.extend_from_slice(b",\"version\":");
    number(out, event.version);
    out.push(b'}');
}

/// RFC 8785 canonical JSON of a JSON text in one pass, without building values: each object's
/// members are written in turn and then put in order; names and strings without escapes and
/// integers without fractions are copied as they are. For every text serde_json reads, the
/// same bytes as parsing it into a `serde_json::Value` and [`write_canonical`] (property tests
/// hold them equal, and the texts refused the same), at a fraction of the cost: `verify`
/// canonicalises millions. On a refused text nothing is written.
pub fn write_canonical_text(out: &mut Vec<u8>, text: &str) -> Result<(), CanonicalError> {
    let mut scanner = Scanner { source: text, text: text.as_bytes(), at: 0, members: Vec::new(), spare: Vec::new() };
    let start = out.len();
    let result = scanner.value(out, 0).and_then(|()| {
        scanner.skip_space();
        if scanner.at == scanner.text.len() { Ok(()) } else { Err(scanner.error("characters after the value")) }
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not JSON at byte {at}: {reason}")]
pub struct CanonicalError {
    pub at: usize,
    pub reason: &'static str,
}

/// The deepest nesting taken: SQLite's own limit for JSON text (serde_json's value route stops
/// at 128; this route took any depth before it was written in one pass, and the service's
/// events never nest deeper than a few levels).
const DEPTH_MAX: usize = 1000;

struct Scanner<'a> {
    source: &'a str,
    text: &'a [u8],
    at: usize,
    /// The members of the objects open now, innermost last (one allocation for all).
    members: Vec<Member<'a>>,
    /// Where an object's members are put in order before they go back in place.
    spare: Vec<u8>,
}

/// An object member as written: its name (decoded) and where its value's bytes are.
struct Member<'a> {
    name: std::borrow::Cow<'a, str>,
    /// The name's token as it stands, when it has no escapes (then it is JCS's text).
    token: Option<&'a str>,
    value: std::ops::Range<usize>,
}

impl<'a> Scanner<'a> {
    fn error(&self, reason: &'static str) -> CanonicalError {
        CanonicalError { at: self.at, reason }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), CanonicalError> {
        self.skip_space();
        match self.text.get(self.at) {
            Some(b'{') => self.object(out, depth + 1),
            Some(b'[') => self.array(out, depth + 1),
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                match escaped {
                    false => out.extend_from_slice(raw.as_bytes()),
                    true => write_string(out, &decode_string(raw).map_err(|_| self.error("an invalid escape"))?),
                }
                Ok(())
            }
            Some(b't') => self.literal(out, b"true"),
            Some(b'f') => self.literal(out, b"false"),
            Some(b'n') => self.literal(out, b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => Err(self.error("an unexpected character")),
            None => Err(self.error("the end of the text")),
        }
    }

    fn literal(&mut self, out: &mut Vec<u8>, word: &[u8]) -> Result<(), CanonicalError> {
        if !self.text[self.at..].starts_with(word) {
            return Err(self.error("an unknown word"));
        }
        self.at += word.len();
        out.extend_from_slice(word);
        Ok(())
    }

    /// A string token, quotes included, and whether it holds escapes. Control characters are
    /// refused, as JSON requires: without escapes the token is already JCS's text.
    fn string(&mut self) -> Result<(&'a str, bool), CanonicalError> {
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        loop {
            match self.text.get(self.at) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.at += 2;
                }
                Some(0x00..=0x1f) => return Err(self.error("a control character in a string")),
                Some(_) => self.at += 1,
                None => return Err(self.error("an unterminated string")),
            }
        }
        self.at += 1;
        // The token starts and ends at ASCII quotes: whole characters of the text.
        Ok((&self.source[start..self.at], escaped))
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
        let start = self.at;
        let digits = |scanner: &mut Self| {
            let from = scanner.at;
            while let Some(b'0'..=b'9') = scanner.text.get(scanner.at) {
                scanner.at += 1;
            }
            scanner.at - from
        };
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let whole = self.at;
        let integer_digits = digits(self);
        if integer_digits == 0 || (integer_digits > 1 && self.text[whole] == b'0') {
            return Err(self.error("a malformed number"));
        }
        let mut plain = true;
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            plain = false;
            if digits(self) == 0 {
                return Err(self.error("a malformed fraction"));
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.at) {
            self.at += 1;
            plain = false;
            if let Some(b'+' | b'-') = self.text.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("a malformed exponent"));
            }
        }
        let token = &self.source[start..self.at];
        if plain && token.len() <= 15 && token != "-0" {
            out.extend_from_slice(token.as_bytes());
        } else {
            // serde_json's own reading of the number (not `str::parse`): the value route's.
            let number: f64 = serde_json::from_str(token).map_err(|_| self.error("a number out of range"))?;
            out.extend_from_slice(ryu_js::Buffer::new().format(number).as_bytes());
        }
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), CanonicalError> {
        if depth > DEPTH_MAX {
            return Err(self.error("nesting too deep"));
        }
        self.at += 1;
        out.push(b'[');
        self.skip_space();
        if self.text.get(self.at) == Some(&b']') {
            self.at += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            self.value(out, depth)?;
            self.skip_space();
            match self.text.get(self.at) {
                Some(b',') => {
                    self.at += 1;
                    out.push(b',');
                }
                Some(b']') => {
                    self.at += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return Err(self.error("an array without its comma or end")),
            }
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), CanonicalError> {
        if depth > DEPTH_MAX {
            return Err(self.error("nesting too deep"));
        }
        self.at += 1;
        // Each value is written after `mark` as it comes; the members are then put in order
        // and written again in place.
        let mark = out.len();
        let base = self.members.len();
        self.skip_space();
        if self.text.get(self.at) == Some(&b'}') {
            self.at += 1;
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        loop {
            self.skip_space();
            if self.text.get(self.at) != Some(&b'"') {
                return Err(self.error("a member without a name"));
            }
            let (raw, escaped) = self.string()?;
            let name = match escaped {
                false => std::borrow::Cow::Borrowed(&raw[1..raw.len() - 1]),
                true => std::borrow::Cow::Owned(decode_string(raw).map_err(|_| self.error("an invalid escape"))?),
            };
            self.skip_space();
            if self.text.get(self.at) != Some(&b':') {
                return Err(self.error("a member without its colon"));
            }
            self.at += 1;
            let start = out.len();
            self.value(out, depth)?;
            self.members.push(Member { name, token: (!escaped).then_some(raw), value: start..out.len() });
            self.skip_space();
            match self.text.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.error("an object without its comma or end")),
            }
        }
        // Names by their UTF-16 code units (RFC 8785 §3.2.3). UTF-8's byte order is the same
        // except where characters beyond U+FFFF meet U+E000–U+FFFF: only then compare in UTF-16.
        // The sort is stable, and of equal names the last is kept (as a parser's map keeps it).
        let members = &mut self.members[base..];
        if members.iter().any(|m| m.name.bytes().any(|b| b >= 0xEE)) {
            members.sort_by(|a, b| a.name.encode_utf16().cmp(b.name.encode_utf16()));
        } else {
            members.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        }
        let ordered = &mut self.spare;
        ordered.clear();
        ordered.push(b'{');
        let mut first = true;
        for (i, member) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.name == member.name) {
                continue;
            }
            if !first {
                ordered.push(b',');
            }
            first = false;
            match member.token {
                Some(token) => ordered.extend_from_slice(token.as_bytes()),
                None => write_string(ordered, &member.name),
            }
            ordered.push(b':');
            ordered.extend_from_slice(&out[member.value.clone()]);
        }
        ordered.push(b'}');
        out.truncate(mark);
        out.extend_from_slice(ordered);
        self.members.truncate(base);
        Ok(())
    }
}

/// A string token with escapes, decoded (serde_json's reading, surrogate pairs included).
fn decode_string(raw: &str) -> Result<String, serde_json::Error> {
    serde_json::from_str(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_store::{EventMetadata, GlobalPosition, Json, StreamId};

    fn event(payload: &str) -> RecordedEvent {
        let at = DateTime::from_timestamp_micros(1_764_600_000_123_456).unwrap();
        RecordedEvent {
            position: GlobalPosition(9_007_199_254_740_993),
            stream_id: StreamId::parse("ticket-0193").unwrap(),
            version: 3,
            event_id: Uuid::from_u128(1),
            event_type: "Resolved".into(),
            schema_version: 2,
            occurred_at: at,
            recorded_at: at,
            metadata: EventMetadata {
                actor: Json::from_text(r#"{"role":"agent","kind":"staff","name":"kata"}"#.into()).unwrap(),
                correlation_id: Uuid::from_u128(2),
                causation_id: None,
            },
            payload: Json::from_text(payload.into()).unwrap(),
        }
    }

    #[test]
    fn the_encoding_is_canonical_json_of_every_field() {
        let bytes = LeafEvent::of(&event(r#"{ "b": 1.50, "a": "á\u00e9", "personal": {"z": null, "y": [2, 1]} }"#))
            .canonical_bytes();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            concat!(
                r#"{"actor":{"kind":"staff","name":"kata","role":"agent"},"causation_id":null,"#,
                r#""correlation_id":"00000000-0000-0000-0000-000000000002","#,
                r#""event_id":"00000000-0000-0000-0000-000000000001","event_type":"Resolved","ledger":1,"#,
                r#""occurred_at":"2025-12-01T14:40:00.123456Z","payload":{"a":"áé","b":1.5,"personal":{"y":[2,1],"z":null}},"#,
                r#""position":"9007199254740993","recorded_at":"2025-12-01T14:40:00.123456Z","schema_version":2,"#,
                r#""stream":"ticket-0193","version":3}"#
            )
        );
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_leaf_but_any_value_does() {
        let one = leaf_hash(&event(r#"{"a":1,"b":{"c":"x","d":true}}"#));
        assert_eq!(one, leaf_hash(&event(r#"{ "b" : { "d": true, "c": "x" }, "a": 1 }"#)));
        assert_ne!(one, leaf_hash(&event(r#"{"a":2,"b":{"c":"x","d":true}}"#)));
        let mut later = event(r#"{"a":1,"b":{"c":"x","d":true}}"#);
        later.recorded_at += chrono::Duration::microseconds(1);
        assert_ne!(one, leaf_hash(&later));
    }

    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            (-1e300f64..1e300).prop_map(|f| serde_json::json!(f)),
            (-1e-3f64..1e-3).prop_map(|f| serde_json::json!(f)),
            "\\PC{0,12}".prop_map(serde_json::Value::String),
            "[\\x00-\\x1f\"\\\\/\u{7f}\u{e000}\u{ffff}\u{10000}\u{1f600}]{0,6}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z\u{e000}\u{ffff}\u{10000}\u{1f600}é]{0,4}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Our writer is RFC 8785's, as `serde_json_canonicalizer` (the reference) writes it.
        #[test]
        fn the_canonical_writer_is_rfc_8785(value in json()) {
            let mut ours = Vec::new();
            write_canonical(&mut ours, &value);
            proptest::prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json_canonicalizer::to_string(&value).unwrap()
            );
        }

        #[test]
        fn a_whole_leaf_is_rfc_8785(payload in json(), actor in json()) {
            let mut leaf = LeafEvent::of(&event("{}"));
            leaf.payload = payload;
            leaf.actor = actor;
            proptest::prop_assert_eq!(leaf.canonical_bytes(), serde_json_canonicalizer::to_vec(&leaf).unwrap());
        }
    }

    proptest::proptest! {
        /// The text route gives the value route's bytes, whatever the stored text's layout.
        #[test]
        fn the_stored_text_canonicalises_as_its_value(payload in json(), actor in json(), pretty in proptest::bool::ANY) {
            let text = |v: &serde_json::Value| if pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) };
            let mut stored = event("{}");
            stored.payload = Json::from_text(text(&payload).unwrap()).unwrap();
            stored.metadata.actor = Json::from_text(text(&actor).unwrap()).unwrap();
            proptest::prop_assert_eq!(canonical_bytes_of(&stored), LeafEvent::of(&stored).canonical_bytes());
        }
    }

    /// The value route's bytes of a text (`None` where serde_json refuses it).
    fn by_value(text: &str) -> Option<Vec<u8>> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let mut out = Vec::new();
        write_canonical(&mut out, &value);
        Some(out)
    }

    /// A text of `value` laid out as PostgreSQL prints `jsonb` (`", "` and `": "`), with
    /// spaces around every token when `loose`, and every name and string written with
    /// `\u` escapes when `escaped`.
    fn layout(value: &serde_json::Value, loose: bool, escaped: bool) -> String {
        use serde_json::Value;
        let string = |text: &str| match escaped {
            false => serde_json::to_string(text).unwrap(),
            true => format!("\"{}\"", text.encode_utf16().map(|u| format!("\\u{u:04X}")).collect::<String>()),
        };
        let gap = if loose { " \n\t" } else { "" };
        match value {
            Value::Array(items) => format!(
                "[{gap}{}{gap}]",
                items.iter().map(|v| layout(v, loose, escaped)).collect::<Vec<_>>().join(&format!("{gap}, {gap}"))
            ),
            Value::Object(members) => format!(
                "{{{gap}{}{gap}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}{gap}: {gap}{}", string(k), layout(v, loose, escaped)))
                    .collect::<Vec<_>>()
                    .join(&format!("{gap}, {gap}"))
            ),
            Value::String(text) => string(text),
            other => other.to_string(),
        }
    }

    proptest::proptest! {
        /// The one-pass text route writes what parsing and the value route write, in any
        /// layout: PostgreSQL's, loose white space, escaped names and strings.
        #[test]
        fn the_text_route_is_the_value_route_in_any_layout(value in json(), loose in proptest::bool::ANY, escaped in proptest::bool::ANY) {
            let text = layout(&value, loose, escaped);
            let mut ours = Vec::new();
            write_canonical_text(&mut ours, &text).unwrap();
            proptest::prop_assert_eq!(Some(ours), by_value(&text));
        }

        /// A broken text is refused exactly where serde_json refuses it, and anything it
        /// takes is written as the value route writes it.
        #[test]
        fn the_text_route_refuses_what_serde_json_refuses(
            value in json(),
            cut in proptest::num::usize::ANY,
            insert in proptest::sample::select(vec!["", "\"", ",", ":", "}", "]", "{", "[", "\\", "-", "0", "1e", ".", "\u{1}", "tru", " "]),
        ) {
            let mut text = layout(&value, false, false);
            let at = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).nth(cut % (text.chars().count() + 1)).unwrap_or(0);
            if insert.is_empty() {
                if let Some(c) = text[at..].chars().next() {
                    text.replace_range(at..at + c.len_utf8(), "");
                }
            } else {
                text.insert_str(at, insert);
            }
            let mut ours = Vec::new();
            let result = write_canonical_text(&mut ours, &text);
            match by_value(&text) {
                Some(expected) => proptest::prop_assert_eq!(ours, expected, "{}", text),
                None => proptest::prop_assert!(result.is_err() && ours.is_empty(), "took {:?}", text),
            }
        }
    }

    proptest::proptest! {
        /// The leaf's instants are `instant_text`'s, whatever the year or the second.
        #[test]
        fn an_instant_is_written_as_instant_text(micros in -8_000_000_000_000_000i64..8_000_000_000_000_000i64) {
            let at = DateTime::from_timestamp_micros(micros).unwrap();
            let mut out = Vec::new();
            write_instant(&mut out, at);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), format!("\"{}\"", instant_text(at)));
        }
    }

    #[test]
    fn the_text_route_keeps_the_last_of_equal_names_and_orders_beyond_the_bmp() {
        let mut out = Vec::new();
        write_canonical_text(&mut out, r#"{"b": 1, "a": 2, "b": 3, "\u0062": 4}"#).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":2,"b":4}"#);
        // U+1F600 (UTF-16 D83D DE00) sorts before U+E000 in UTF-16, after it in UTF-8.
        let mut out = Vec::new();
        write_canonical_text(&mut out, "{\"\u{e000}\": 1, \"\u{1f600}\": 2, \"-0\": -0, \"n\": [1.50, 1e2, -0.0]}")
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"-0\":0,\"n\":[1.5,100,0],\"\u{1f600}\":2,\"\u{e000}\":1}");
        // Deeper than serde_json's 128 levels, as SQLite stores it: taken, up to SQLite's 1000.
        let deep = |levels: usize| format!("{}{}", "[ ".repeat(levels), "]".repeat(levels));
        let mut out = Vec::new();
        write_canonical_text(&mut out, &deep(200)).unwrap();
        assert_eq!(out, format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes());
        assert!(by_value(&deep(200)).is_none());
        assert!(write_canonical_text(&mut Vec::new(), &deep(1000)).is_ok());
        assert!(write_canonical_text(&mut Vec::new(), &deep(1001)).is_err());
    }

    #[test]
    fn a_leaf_survives_its_own_json() {
        let leaf = LeafEvent::of(&event(r#"{"a":[1,2,{"b":null}]}"#));
        let text = serde_json::to_string(&leaf).unwrap();
        let back: LeafEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.leaf_hash(), leaf.leaf_hash());
    }
}
