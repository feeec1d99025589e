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
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
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

    /// The leaf's data: RFC 8785 canonical JSON.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("a leaf event always serialises")
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

/// The leaf hash of a stored event.
pub fn leaf_hash(event: &RecordedEvent) -> Hash {
    LeafEvent::of(event).leaf_hash()
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

    #[test]
    fn a_leaf_survives_its_own_json() {
        let leaf = LeafEvent::of(&event(r#"{"a":[1,2,{"b":null}]}"#));
        let text = serde_json::to_string(&leaf).unwrap();
        let back: LeafEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.leaf_hash(), leaf.leaf_hash());
    }
}
