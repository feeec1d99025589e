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
    let uuid = |out: &mut Vec<u8>, id: &Uuid| {
        out.push(b'"');
        out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
        out.push(b'"');
    };
    let stored = |out: &mut Vec<u8>, json: &str| {
        if write_canonical_text(out, json).is_err() {
            // The store guarantees valid JSON; should it not be, the value route says the same.
            let value: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
            write_canonical(out, &value);
        }
    };
    out.extend_from_slice(b"{\"actor\":");
    stored(&mut out, event.metadata.actor.get());
    out.extend_from_slice(b",\"causation_id\":");
    match &event.metadata.causation_id {
        Some(id) => uuid(&mut out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"correlation_id\":");
    uuid(&mut out, &event.metadata.correlation_id);
    out.extend_from_slice(b",\"event_id\":");
    uuid(&mut out, &event.event_id);
    out.extend_from_slice(b",\"event_type\":");
    write_string(&mut out, &event.event_type);
    out.extend_from_slice(format!(",\"ledger\":{LEAF_FORMAT},\"occurred_at\":").as_bytes());
    write_string(&mut out, &instant_text(event.occurred_at));
    out.extend_from_slice(b",\"payload\":");
    stored(&mut out, event.payload.get());
    out.extend_from_slice(format!(",\"position\":\"{}\",\"recorded_at\":", event.position.0).as_bytes());
    write_string(&mut out, &instant_text(event.recorded_at));
    out.extend_from_slice(format!(",\"schema_version\":{},\"stream\":", event.schema_version).as_bytes());
    write_string(&mut out, event.stream_id.as_str());
    out.extend_from_slice(format!(",\"version\":{}}}", event.version).as_bytes());
    out
}

/// An object member's name, borrowed from the text when it has no escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Name<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// RFC 8785 canonical JSON of a JSON text, without building values: members are borrowed
/// from the text, strings and integers without escapes or fractions are copied as they are.
pub fn write_canonical_text(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    use serde_json::value::RawValue;
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: std::collections::BTreeMap<Name<'_>, &RawValue> = serde_json::from_str(text)?;
            out.push(b'{');
            let mut names: Vec<(&Name<'_>, &&RawValue)> = members.iter().collect();
            if names.iter().any(|(name, _)| name.0.chars().any(|c| c > '\u{D7FF}')) {
                names.sort_by(|a, b| a.0.0.encode_utf16().cmp(b.0.0.encode_utf16()));
            }
            for (i, (name, value)) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, &name.0);
                out.push(b':');
                write_canonical_text(out, value.get())?;
            }
            out.push(b'}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_text(out, item.get())?;
            }
            out.push(b']');
        }
        Some(b'"') if !text.contains('\\') => out.extend_from_slice(text.as_bytes()),
        Some(b'"') => write_string(out, &serde_json::from_str::<String>(text)?),
        Some(b't' | b'f' | b'n') => out.extend_from_slice(text.as_bytes()),
        _ => {
            let plain_integer = text.len() <= 15
                && text.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
                && text != "-0";
            if plain_integer {
                out.extend_from_slice(text.as_bytes());
            } else {
                let number: f64 = serde_json::from_str(text)?;
                out.extend_from_slice(ryu_js::Buffer::new().format(number).as_bytes());
            }
        }
    }
    Ok(())
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

    #[test]
    fn a_leaf_survives_its_own_json() {
        let leaf = LeafEvent::of(&event(r#"{"a":[1,2,{"b":null}]}"#));
        let text = serde_json::to_string(&leaf).unwrap();
        let back: LeafEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.leaf_hash(), leaf.leaf_hash());
    }
}
