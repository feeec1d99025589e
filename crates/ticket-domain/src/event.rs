//! The ticket's events: what happened, in the past tense, forever.
//!
//! Every event's JSON payload keeps personal data (names, addresses, phone numbers, message
//! bodies) in one object under the key `personal`, and nothing personal outside it, so that
//! a person's data can later be encrypted per person and erased (crypto-shredding) without
//! touching the rest of the history or the statistics built from it.
//!
//! An event type's JSON shape is versioned (`SCHEMA_VERSION` per type) and described by a
//! JSON Schema in `schemas/events/`; see [`crate::codec`] for reading older versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::vocabulary::*;

/// A ticket was created from a report on one of the intake channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Received {
    pub number: TicketNumber,
    pub channel: Channel,
    /// Set at intake when the channel or the agent knows it; otherwise at identification.
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub contract_id: Option<ContractId>,
    /// How urgent it came in (since schema version 3; older ones were `normal`).
    pub priority: Priority,
    pub language: Language,
    pub personal: ReporterDetails,
}

/// Who reported, and what they wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReporterDetails {
    pub name: PersonName,
    /// Missing only for reports taken by phone or letter from someone without an address.
    /// For an e-mail, its `From:`.
    pub email: Option<EmailAddress>,
    /// Where answers go when it is not `email`: an e-mail's `Reply-To:` (a secretary sending
    /// for someone). Customer mail is sent here (since schema version 4 of `Received`).
    pub reply_to: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub subject: Subject,
    pub message: MessageBody,
    /// Files sent with the report (since schema version 2 of `Received`).
    pub attachments: Vec<AttachmentRef>,
}

/// What every personal text reads as once its data key is destroyed (crypto-shredding).
pub const ERASED: &str = "[erased]";

fn erased_text<T>(parse: fn(&str) -> Result<T, InvalidValue>) -> T {
    parse(ERASED).expect("the erased marker is valid text")
}

impl ReporterDetails {
    /// The reporter once erased: no address, no phone, texts reading [`ERASED`], no files.
    pub fn erased() -> Self {
        Self {
            name: erased_text(PersonName::parse),
            email: None,
            reply_to: None,
            phone: None,
            subject: erased_text(Subject::parse),
            message: erased_text(MessageBody::parse),
            attachments: Vec::new(),
        }
    }
}

/// The `personal` part of an event type once erased (`None`: the type has none), in the
/// current schema version's shape.
pub fn erased_personal(event_type: &str) -> Option<serde_json::Value> {
    let body = || erased_text(MessageBody::parse);
    let value = match event_type {
        "Received" => serde_json::to_value(ReporterDetails::erased()),
        "Resolved" => serde_json::to_value(ResolutionText { resolution: body(), rejection_reasons: None }),
        "SurveyAnswered" => serde_json::to_value(SurveyComment { comment: None }),
        "CustomerReplied" => {
            serde_json::to_value(CustomerMessage { from: None, body: body(), attachments: Vec::new() })
        }
        "AgentReplied" | "NoteAdded" => serde_json::to_value(MessageText { body: body() }),
        _ => return None,
    };
    Some(value.expect("plain data serialises"))
}

/// The customer was told the ticket exists (policy §7.2): the confirmation e-mail went out,
/// or, without an address, the agent told them in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledged {
    /// The Message-ID of the confirmation mail, to thread replies on.
    pub message_id: Option<MessageId>,
}

/// The agent identified the report and made first contact with the reporter (policy §7.3);
/// investigation starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Investigated {
    pub category: Category,
    pub service_area: ServiceArea,
    pub contact_method: ContactMethod,
}

/// The problem is outside the agent's authority; a division takes it (policy §7.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalated {
    pub division: DivisionId,
    pub reason: Reason,
}

/// The division reported its outcome; the ticket is back with the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationAnswered {
    pub division: DivisionId,
    pub outcome: Reason,
}

/// The ticket was resolved and the customer informed (policy §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolved {
    pub root_cause: RootCause,
    /// True when the agent solved it within their own authority (§7.4.1), false when a
    /// division's work solved it (§7.4.2).
    pub within_own_authority: bool,
    /// For a complaint, whether it was upheld (since schema version 2; older ones were).
    pub complaint_outcome: ComplaintOutcome,
    pub personal: ResolutionText,
}

/// The resolution as told to the customer; it may quote them, so it is personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolutionText {
    pub resolution: MessageBody,
    /// Why a complaint was rejected, whole or in part (since schema version 2).
    pub rejection_reasons: Option<MessageBody>,
}

/// The ticket was closed after its resolution (policy §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Closed {}

/// The satisfaction survey e-mail went out (policy §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveySent {
    pub message_id: Option<MessageId>,
}

/// The customer answered the satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswered {
    pub score: SurveyScore,
    pub personal: SurveyComment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyComment {
    pub comment: Option<MessageBody>,
}

/// A resolved or closed ticket went back to investigation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reopened {
    pub reason: Reason,
}

/// The category or service area was corrected. A ticket becoming or ceasing to be a
/// complaint is one of these, with who, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reclassified {
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub previous_category: Option<Category>,
    pub previous_service_area: Option<ServiceArea>,
    pub reason: Reason,
}

/// The ticket was given to a member of staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assigned {
    pub assignee: StaffName,
}

/// The ticket's priority changed, with why (its SLA targets may follow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prioritised {
    pub priority: Priority,
    pub previous_priority: Priority,
    pub reason: Reason,
}

/// The customer wrote again on this ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerReplied {
    pub channel: Channel,
    pub message_id: Option<MessageId>,
    pub personal: CustomerMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerMessage {
    pub from: Option<EmailAddress>,
    pub body: MessageBody,
    /// Files sent with the message (since schema version 2 of `CustomerReplied`).
    pub attachments: Vec<AttachmentRef>,
}

/// An agent wrote to the customer; the message is part of the ticket's record (policy §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReplied {
    pub personal: MessageText,
}

/// An internal note; never shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteAdded {
    pub personal: MessageText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageText {
    pub body: MessageBody,
}

/// Outside the policy's scope (§2): closed without the complaint workflow and without a
/// survey, but kept in the record and in the statistics as out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkedOutOfScope {
    pub reason: Reason,
}

/// The ticket was linked to a service contract by hand (intake links it from the reporter's
/// address; this corrects or completes that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractLinked {
    pub contract_id: ContractId,
    pub previous_contract_id: Option<ContractId>,
}

/// An SLA clock of the ticket reached its warning share (recorded once per clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaWarned {
    pub target: crate::sla::SlaTarget,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// An SLA clock of the ticket passed its due time unmet (recorded once per clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaBreached {
    pub target: crate::sla::SlaTarget,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// A data subject's request (GDPR Art. 17) could not be carried out yet because the law keeps
/// the record (a complaint, five years after its answer: Act CLV of 1997 §17/A): its processing
/// is restricted at once — hidden from queues, exports and drill-downs except for auditors — and
/// its personal data erased when the hold ends. Carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessingRestricted {
    pub reason: Reason,
    /// The request's reference (the data-protection officer's case number).
    pub request_reference: Reason,
    /// When the hold ends, if it is known yet (a complaint not answered yet holds until five
    /// years after its answer).
    pub hold_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The ticket's personal data was erased: its data key destroyed (crypto-shredding), so every
/// personal part of its history reads as erased from now on. Who did it is the event's actor;
/// carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    pub reason: Reason,
    /// The request's reference, or the retention rule that ended the period.
    pub request_reference: Reason,
}

/// `ticketd migrate` sealed personal parts this ticket's events had stored in the clear (they
/// were written before sealing existed): the one rewrite of stored events there is. For each,
/// the ledger leaf it had and the one it has now, so that `ticketd verify` and a proof bundle
/// accept exactly these changes and no other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataSealed {
    pub events: Vec<SealedEvent>,
}

/// One event sealed in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedEvent {
    pub position: i64,
    pub event_id: uuid::Uuid,
    /// The ledger leaf hashes (base64, as proofs write them) of the event as it was stored,
    /// and as it is stored now.
    pub leaf_before: String,
    pub leaf_after: String,
}

/// Declares [`TicketEvent`] over the event structs, with each type's name and schema version
/// in one place, so that the name list, the codec and the schema list cannot drift apart.
macro_rules! ticket_events {
    ($($name:ident = $version:literal),+ $(,)?) => {
        /// Everything that can happen to a ticket.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum TicketEvent {
            $($name($name),)+
        }

        impl TicketEvent {
            /// Every event type's name and current schema version.
            pub const TYPES: &'static [(&'static str, u32)] = &[$((stringify!($name), $version),)+];

            /// The stored `event_type` of this event.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$name(_) => stringify!($name),)+
                }
            }

            /// The schema version this code writes for this event's type.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Self::$name(_) => $version,)+
                }
            }

            /// The current schema version of an event type, if the type exists.
            pub fn current_schema_version(event_type: &str) -> Option<u32> {
                Self::TYPES.iter().find(|(name, _)| *name == event_type).map(|(_, v)| *v)
            }

            /// The payload JSON (the struct, without a type tag: the type is stored beside it).
            pub fn to_payload(&self) -> serde_json::Value {
                let value = match self {
                    $(Self::$name(event) => serde_json::to_value(event),)+
                };
                // The event structs hold only strings, numbers, bools and enums.
                value.expect("event structs always serialise")
            }

            /// Reads a payload already upcast to the current schema version.
            pub(crate) fn from_current_payload(
                event_type: &str,
                payload: serde_json::Value,
            ) -> Result<Self, crate::codec::DecodeError> {
                match event_type {
                    $(stringify!($name) => serde_json::from_value(payload)
                        .map(Self::$name)
                        .map_err(|e| crate::codec::DecodeError::Payload {
                            event_type: event_type.to_owned(),
                            message: e.to_string(),
                        }),)+
                    other => Err(crate::codec::DecodeError::UnknownType(other.to_owned())),
                }
            }

            /// The JSON Schema of every event type's current payload.
            pub fn json_schemas() -> Vec<(&'static str, u32, serde_json::Value)> {
                vec![$((
                    stringify!($name),
                    $version,
                    serde_json::to_value(schemars::schema_for!($name))
                        .expect("a schema is JSON"),
                ),)+]
            }
        }
    };
}

ticket_events! {
    Received = 4,
    Acknowledged = 1,
    Investigated = 1,
    Escalated = 1,
    EscalationAnswered = 1,
    Resolved = 2,
    Closed = 1,
    SurveySent = 1,
    SurveyAnswered = 1,
    Reopened = 1,
    Reclassified = 1,
    Assigned = 1,
    Prioritised = 1,
    CustomerReplied = 2,
    AgentReplied = 1,
    NoteAdded = 1,
    MarkedOutOfScope = 1,
    ContractLinked = 1,
    SlaWarned = 1,
    SlaBreached = 1,
    ProcessingRestricted = 1,
    PersonalDataErased = 1,
    PersonalDataSealed = 1,
}
