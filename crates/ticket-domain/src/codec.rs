//! Events are forever: reading a payload of any schema version ever written.
//!
//! When an event type's JSON shape changes, its version in [`TicketEvent::TYPES`] goes up and
//! one *upcaster* — a pure function from the old JSON to the next version's JSON — is added to
//! [`UPCASTERS`]. Reading applies the chain from the stored version to the current one. Stored
//! events are never rewritten. `schemas/fixtures/` holds events in every version ever written;
//! a test reads them all with today's code.

use serde_json::Value;

use crate::event::TicketEvent;

/// Why a stored event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type '{0}'")]
    UnknownType(String),
    #[error(
        "event type '{event_type}' has schema version {stored}, newer than this code's {current}: upgrade the service"
    )]
    NewerThanCode { event_type: String, stored: u32, current: u32 },
    #[error("no upcaster from version {from} of '{event_type}'")]
    MissingUpcaster { event_type: String, from: u32 },
    #[error("payload of '{event_type}' does not match its schema: {message}")]
    Payload { event_type: String, message: String },
}

/// One step of an event type's history: turns version `from` into version `from + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub upcast: fn(Value) -> Value,
}

/// Every upcaster ever written.
pub const UPCASTERS: &[Upcaster] = &[
    // v2: reports and replies carry attachments; older ones had none.
    Upcaster { event_type: "Received", from: 1, upcast: no_attachments },
    Upcaster { event_type: "CustomerReplied", from: 1, upcast: no_attachments },
    // v2: a resolution says whether a complaint was upheld; older ones were.
    Upcaster { event_type: "Resolved", from: 1, upcast: upheld },
    // v3: a report carries its priority; older ones were normal.
    Upcaster { event_type: "Received", from: 2, upcast: normal_priority },
    // v4: a report may name a reply-to address besides the reporter's; older ones had none.
    Upcaster { event_type: "Received", from: 3, upcast: no_reply_to },
];

fn no_reply_to(mut payload: Value) -> Value {
    if let Some(personal) = payload.get_mut("personal").and_then(Value::as_object_mut) {
        personal.entry("reply_to").or_insert(Value::Null);
    }
    payload
}

fn normal_priority(mut payload: Value) -> Value {
    if let Some(object) = payload.as_object_mut() {
        object.entry("priority").or_insert_with(|| Value::String("normal".into()));
    }
    payload
}

fn upheld(mut payload: Value) -> Value {
    if let Some(object) = payload.as_object_mut() {
        object.entry("complaint_outcome").or_insert_with(|| Value::String("upheld".into()));
    }
    if let Some(personal) = payload.get_mut("personal").and_then(Value::as_object_mut) {
        personal.entry("rejection_reasons").or_insert(Value::Null);
    }
    payload
}

fn no_attachments(mut payload: Value) -> Value {
    if let Some(personal) = payload.get_mut("personal").and_then(Value::as_object_mut) {
        personal.entry("attachments").or_insert_with(|| Value::Array(Vec::new()));
    }
    payload
}

/// What the store keeps of an event's body.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub payload: Value,
}

pub fn encode(event: &TicketEvent) -> EncodedEvent {
    EncodedEvent { event_type: event.event_type(), schema_version: event.schema_version(), payload: event.to_payload() }
}

pub fn decode(event_type: &str, schema_version: u32, payload: Value) -> Result<TicketEvent, DecodeError> {
    decode_with(UPCASTERS, event_type, schema_version, payload)
}

fn decode_with(
    upcasters: &[Upcaster],
    event_type: &str,
    schema_version: u32,
    payload: Value,
) -> Result<TicketEvent, DecodeError> {
    let current = TicketEvent::current_schema_version(event_type)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    if schema_version > current {
        return Err(DecodeError::NewerThanCode { event_type: event_type.to_owned(), stored: schema_version, current });
    }
    let mut payload = payload;
    for from in schema_version..current {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from == from)
            .ok_or_else(|| DecodeError::MissingUpcaster { event_type: event_type.to_owned(), from })?;
        payload = (step.upcast)(payload);
    }
    TicketEvent::from_current_payload(event_type, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use crate::vocabulary::*;

    #[test]
    fn every_upcaster_chain_is_complete() {
        for (event_type, current) in TicketEvent::TYPES {
            for from in 1..*current {
                assert!(
                    UPCASTERS.iter().any(|u| u.event_type == *event_type && u.from == from),
                    "{event_type} v{from} has no upcaster"
                );
            }
        }
    }

    #[test]
    fn a_newer_version_than_the_code_is_refused_not_guessed() {
        let error = decode("Closed", 2, serde_json::json!({})).unwrap_err();
        assert!(matches!(error, DecodeError::NewerThanCode { stored: 2, current: 1, .. }));
        assert!(matches!(decode("Teleported", 1, serde_json::json!({})), Err(DecodeError::UnknownType(_))));
    }

    #[test]
    fn an_upcaster_chain_turns_an_old_shape_into_the_current_one() {
        // A pretend history of `Assigned`: v0 called the field "agent".
        fn rename_agent(mut v: Value) -> Value {
            let agent = v.as_object_mut().and_then(|o| o.remove("agent")).unwrap_or(Value::Null);
            serde_json::json!({ "assignee": agent })
        }
        let upcasters = [Upcaster { event_type: "Assigned", from: 0, upcast: rename_agent }];
        let event = decode_with(&upcasters, "Assigned", 0, serde_json::json!({ "agent": "kata" })).unwrap();
        assert_eq!(event, TicketEvent::Assigned(Assigned { assignee: StaffName::parse("kata").unwrap() }));
        let missing = decode_with(&[], "Assigned", 0, serde_json::json!({ "agent": "kata" })).unwrap_err();
        assert!(matches!(missing, DecodeError::MissingUpcaster { from: 0, .. }));
    }

    #[test]
    fn a_version_1_reply_reads_as_one_without_attachments_and_version_2_keeps_them() {
        let v1 = serde_json::json!({
            "channel": "email", "message_id": null,
            "personal": { "from": "anna@example.hu", "body": "Még mindig hibás." }
        });
        let TicketEvent::CustomerReplied(old) = decode("CustomerReplied", 1, v1).unwrap() else { panic!() };
        assert!(old.personal.attachments.is_empty());
        let file =
            AttachmentRef::new(&"ab".repeat(32), 1234, "application/PDF", "C:\\Users\\anna\\számla.pdf").unwrap();
        assert_eq!((file.media_type.as_str(), file.file_name.as_str()), ("application/pdf", "számla.pdf"));
        let event = TicketEvent::CustomerReplied(CustomerReplied {
            personal: CustomerMessage { attachments: vec![file], ..old.personal },
            ..old
        });
        let stored = encode(&event);
        assert_eq!(stored.schema_version, 2);
        assert_eq!(decode(stored.event_type, 2, stored.payload).unwrap(), event);
        assert!(AttachmentRef::new("xyz", 1, "text/plain", "a.txt").is_err());
        assert!(AttachmentRef::new(&"ab".repeat(32), 1, "nonsense", "a.txt").is_err());
        assert_eq!(AttachmentRef::new(&"ab".repeat(32), 1, "text/plain", "../..").unwrap().file_name, "attachment");
    }

    #[test]
    fn a_payload_that_breaks_its_schema_is_a_clear_error() {
        let error = decode("Escalated", 1, serde_json::json!({ "division": "it" })).unwrap_err();
        assert!(matches!(error, DecodeError::Payload { .. }), "{error}");
        assert!(error.to_string().contains("reason"), "{error}");
    }

    #[test]
    fn encode_then_decode_is_the_identity() {
        let event = TicketEvent::Escalated(Escalated {
            division: DivisionId::parse("it-operations").unwrap(),
            reason: Reason::parse("needs a database fix").unwrap(),
        });
        let encoded = encode(&event);
        assert_eq!(encoded.event_type, "Escalated");
        assert_eq!(decode(encoded.event_type, encoded.schema_version, encoded.payload).unwrap(), event);
    }
}
