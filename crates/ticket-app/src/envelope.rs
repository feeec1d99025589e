//! Domain events in and out of the store's envelope.

use chrono::{DateTime, Utc};
use event_store::{EventMetadata, GlobalPosition, Json, NewEvent, RecordedEvent};
use ticket_domain::TicketEvent;
use ticket_domain::codec::{self, DecodeError};
use ticket_domain::vocabulary::Actor;
use uuid::Uuid;

/// Who is acting, and in answer to what: stamped on every event a command causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: Actor,
    /// Ties together everything one request caused (the request's id, or a new one).
    pub correlation_id: Uuid,
    /// The event or request that caused this command, when there is one.
    pub causation_id: Option<Uuid>,
}

impl CommandContext {
    pub fn new(actor: Actor) -> Self {
        Self { actor, correlation_id: Uuid::now_v7(), causation_id: None }
    }
}

/// Wraps a domain event for the store.
pub fn to_new_event(event: &TicketEvent, context: &CommandContext, occurred_at: DateTime<Utc>) -> NewEvent {
    let stored = codec::encode(event);
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: stored.event_type.to_owned(),
        schema_version: stored.schema_version,
        occurred_at,
        metadata: EventMetadata {
            actor: Json::from_serialize(&context.actor).expect("an actor is plain data"),
            correlation_id: context.correlation_id,
            causation_id: context.causation_id,
        },
        payload: Json::from_value(&stored.payload),
    }
}

/// A stored ticket event, read back: the envelope and the decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRecord {
    pub position: GlobalPosition,
    pub version: u64,
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub event: TicketEvent,
}

/// Reads a stored event back, upcasting older schema versions.
pub fn decode(recorded: &RecordedEvent) -> Result<TicketRecord, DecodeError> {
    // The store hands back its text unchecked (the database checked it on the way in); a row
    // damaged since is an error here, never a panic.
    let payload = serde_json::from_str(recorded.payload.get()).map_err(|e| DecodeError::Payload {
        event_type: recorded.event_type.clone(),
        message: format!("not JSON: {e}"),
    })?;
    let event = codec::decode(&recorded.event_type, recorded.schema_version, payload)?;
    let actor = recorded.metadata.actor.parse().map_err(|e| DecodeError::Payload {
        event_type: recorded.event_type.clone(),
        message: format!("actor: {e}"),
    })?;
    Ok(TicketRecord {
        position: recorded.position,
        version: recorded.version,
        event_id: recorded.event_id,
        occurred_at: recorded.occurred_at,
        recorded_at: recorded.recorded_at,
        actor,
        correlation_id: recorded.metadata.correlation_id,
        causation_id: recorded.metadata.causation_id,
        event,
    })
}
