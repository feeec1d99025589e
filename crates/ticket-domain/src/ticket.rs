//! The ticket's workflow: `decide` (may refuse, never has side effects) and `evolve` (total:
//! replaying history never fails).
//!
//! ```text
//! received ─ack─▶ acknowledged ─investigate─▶ investigating ─resolve─▶ resolved ─close─▶ closed
//!                                  ▲   │escalate                        │ reopen        │ survey sent ─▶ answered
//!                                  │   ▼                                ▼               │
//!                                  └─ escalated ◀─┘(answer)        investigating ◀──────┘ reopen
//! any open state ─out of scope─▶ closed (out of scope, no survey)
//! ```

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::command::{CommandKind, ReceiveTicket, TicketCommand};
use crate::event::{self as ev, TicketEvent};
use crate::vocabulary::*;

/// Where a ticket stands in the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Received,
    Acknowledged,
    Investigating,
    Escalated,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Self::Received, Self::Acknowledged, Self::Investigating, Self::Escalated, Self::Resolved, Self::Closed];

    pub fn name(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Acknowledged => "acknowledged",
            Self::Investigating => "investigating",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the satisfaction survey of a closed ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SurveyStatus {
    NotSent,
    Sent,
    Answered,
}

/// A received ticket as its history makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketState {
    pub number: TicketNumber,
    pub status: Status,
    pub channel: Channel,
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub contract_id: Option<ContractId>,
    pub priority: Priority,
    pub language: Language,
    /// Who reported and what about (personal data, as received).
    pub reporter: ev::ReporterDetails,
    pub assignee: Option<StaffName>,
    /// The division holding the ticket while it is escalated.
    pub escalated_to: Option<DivisionId>,
    /// True when closed as out of scope (policy §2).
    pub out_of_scope: bool,
    pub survey: SurveyStatus,
    pub received_at: DateTime<Utc>,
    pub first_contact_at: Option<DateTime<Utc>>,
    /// The latest resolution; cleared by a reopen.
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The SLA clocks that have warned, and that were breached (each recorded once).
    pub sla_warned: std::collections::BTreeSet<crate::sla::SlaTarget>,
    pub sla_breached: std::collections::BTreeSet<crate::sla::SlaTarget>,
    /// A division answered an escalation and the reporter has not been told yet: no resolving.
    pub outcome_to_inform: bool,
    /// An erasure request met a legal hold: processing is restricted (until `hold_until`, or
    /// until five years after the answer when that is not known yet).
    pub restricted: Option<Restriction>,
    /// The personal data was erased (the reporter reads as erased from then on).
    pub personal_erased: bool,
}

/// Processing restricted under a legal hold (GDPR Art. 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restriction {
    pub since: DateTime<Utc>,
    pub hold_until: Option<DateTime<Utc>>,
}

/// A ticket's stream folded: its version (the number of events) and its state, `None` until
/// it has been received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    version: u64,
    state: Option<TicketState>,
}

/// Why a command was refused. Each says what the caller can do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the ticket has not been received; '{command}' needs an existing ticket")]
    NotReceived { command: &'static str },
    #[error("the ticket already exists")]
    AlreadyReceived,
    #[error("cannot '{command}' a ticket that is {status}; '{command}' is allowed when the ticket is {}", list(.allowed_from))]
    InvalidTransition { command: &'static str, status: Status, allowed_from: &'static [Status] },
    #[error("the ticket was closed as out of scope; '{command}' does not apply to it")]
    ClosedOutOfScope { command: &'static str },
    #[error("the satisfaction survey has already been sent")]
    SurveyAlreadySent,
    #[error("no satisfaction survey has been sent for this ticket")]
    SurveyNotSent,
    #[error("the satisfaction survey has already been answered")]
    SurveyAlreadyAnswered,
    #[error(
        "the division's answer has not been passed on to the reporter: send it with 'replies' first (policy §7.4.2)"
    )]
    OutcomeNotInformed,
    #[error("{0}")]
    ComplaintOutcome(&'static str),
    #[error("nothing would change: {0}")]
    NothingToChange(&'static str),
    #[error(
        "the ticket's personal data was erased: '{command}' would add personal data to it (open a new ticket instead)"
    )]
    PersonalDataErased { command: &'static str },
}

fn list(statuses: &[Status]) -> String {
    statuses.iter().map(|s| s.name()).collect::<Vec<_>>().join(" or ")
}

use Status::*;

const OPEN: &[Status] = &[Received, Acknowledged, Investigating, Escalated, Resolved];
const ANY: &[Status] = &[Received, Acknowledged, Investigating, Escalated, Resolved, Closed];

/// The statuses in which a command may run: the workflow's edges, in one table.
pub fn allowed_from(kind: CommandKind) -> &'static [Status] {
    match kind {
        CommandKind::Receive => &[],
        CommandKind::Acknowledge => &[Received],
        CommandKind::Investigate => &[Acknowledged],
        CommandKind::Escalate => &[Investigating],
        CommandKind::AnswerEscalation => &[Escalated],
        CommandKind::Resolve => &[Investigating],
        CommandKind::Close => &[Resolved],
        CommandKind::RecordSurveySent | CommandKind::AnswerSurvey => &[Closed],
        CommandKind::Reopen => &[Resolved, Closed],
        CommandKind::Reclassify
        | CommandKind::AddNote
        | CommandKind::RecordCustomerReply
        | CommandKind::LinkContract
        | CommandKind::RecordSlaWarning
        | CommandKind::RecordSlaBreach
        | CommandKind::RestrictProcessing
        | CommandKind::ErasePersonalData
        | CommandKind::RecordSealing => ANY,
        CommandKind::Assign | CommandKind::Prioritise | CommandKind::ReplyToCustomer => OPEN,
        CommandKind::MarkOutOfScope => &[Received, Acknowledged, Investigating, Escalated],
    }
}

impl Ticket {
    /// The number of events in the ticket's stream: the expected version of the next append.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn state(&self) -> Option<&TicketState> {
        self.state.as_ref()
    }

    /// Folds a history. Never fails: every stored event is applied as it was recorded.
    pub fn replay<'a>(events: impl IntoIterator<Item = (&'a TicketEvent, DateTime<Utc>)>) -> Self {
        events.into_iter().fold(Self::default(), |ticket, (event, at)| ticket.evolve(event, at))
    }

    /// Whether `kind` may run now, ignoring its arguments.
    pub fn permits(&self, kind: CommandKind) -> Result<(), DomainError> {
        let Some(state) = &self.state else {
            return match kind {
                CommandKind::Receive => Ok(()),
                other => Err(DomainError::NotReceived { command: other.name() }),
            };
        };
        if kind == CommandKind::Receive {
            return Err(DomainError::AlreadyReceived);
        }
        let allowed = allowed_from(kind);
        if !allowed.contains(&state.status) {
            return Err(DomainError::InvalidTransition {
                command: kind.name(),
                status: state.status,
                allowed_from: allowed,
            });
        }
        // Erased is erased: nothing personal is added to the ticket again (its key is gone).
        if state.personal_erased
            && matches!(
                kind,
                CommandKind::AddNote
                    | CommandKind::ReplyToCustomer
                    | CommandKind::Resolve
                    | CommandKind::RecordCustomerReply
                    | CommandKind::AnswerSurvey
            )
        {
            return Err(DomainError::PersonalDataErased { command: kind.name() });
        }
        match kind {
            CommandKind::RecordSurveySent | CommandKind::AnswerSurvey | CommandKind::Reopen if state.out_of_scope => {
                Err(DomainError::ClosedOutOfScope { command: kind.name() })
            }
            CommandKind::RecordSurveySent if state.survey != SurveyStatus::NotSent => {
                Err(DomainError::SurveyAlreadySent)
            }
            CommandKind::AnswerSurvey if state.survey == SurveyStatus::NotSent => Err(DomainError::SurveyNotSent),
            CommandKind::AnswerSurvey if state.survey == SurveyStatus::Answered => {
                Err(DomainError::SurveyAlreadyAnswered)
            }
            // Policy §7.4.2: the division's outcome goes to the reporter before the ticket is resolved.
            CommandKind::Resolve if state.outcome_to_inform => Err(DomainError::OutcomeNotInformed),
            _ => Ok(()),
        }
    }

    /// The commands that may run now: what a refused caller is told it can do instead.
    pub fn allowed_commands(&self) -> Vec<CommandKind> {
        CommandKind::ALL.into_iter().filter(|kind| self.permits(*kind).is_ok()).collect()
    }

    /// Decides what happens when `command` runs at `now`. Pure: no I/O, no clock, no randomness.
    /// A refused command yields no events.
    pub fn decide(&self, command: TicketCommand, now: DateTime<Utc>) -> Result<Vec<TicketEvent>, DomainError> {
        self.permits(command.kind())?;
        let Some(state) = &self.state else {
            let TicketCommand::Receive(receive) = command else {
                unreachable!("permits() lets only Receive through on an empty stream")
            };
            return Ok(vec![received(receive)]);
        };
        let event = match command {
            TicketCommand::Receive(_) => unreachable!("permits() refuses Receive on an existing ticket"),
            TicketCommand::Acknowledge { message_id } => TicketEvent::Acknowledged(ev::Acknowledged { message_id }),
            TicketCommand::Investigate { category, service_area, contact_method } => {
                TicketEvent::Investigated(ev::Investigated { category, service_area, contact_method })
            }
            TicketCommand::Escalate { division, reason } => TicketEvent::Escalated(ev::Escalated { division, reason }),
            TicketCommand::AnswerEscalation { outcome } => {
                let division = state.escalated_to.clone().expect("an escalated ticket names its division");
                TicketEvent::EscalationAnswered(ev::EscalationAnswered { division, outcome })
            }
            TicketCommand::Resolve {
                resolution,
                root_cause,
                within_own_authority,
                complaint_outcome,
                rejection_reasons,
            } => {
                let complaint = state.category == Some(Category::Complaint);
                match (complaint_outcome, &rejection_reasons) {
                    (ComplaintOutcome::Upheld, Some(_)) => {
                        return Err(DomainError::ComplaintOutcome("rejection reasons belong to a rejection"));
                    }
                    (ComplaintOutcome::PartlyUpheld | ComplaintOutcome::Rejected, _) if !complaint => {
                        return Err(DomainError::ComplaintOutcome("only a complaint is upheld or rejected"));
                    }
                    (ComplaintOutcome::PartlyUpheld | ComplaintOutcome::Rejected, None) => {
                        return Err(DomainError::ComplaintOutcome(
                            "a complaint rejected, whole or in part, needs its reasons (Act CLV of 1997 §17/A)",
                        ));
                    }
                    _ => {}
                }
                TicketEvent::Resolved(ev::Resolved {
                    root_cause,
                    within_own_authority,
                    complaint_outcome,
                    personal: ev::ResolutionText { resolution, rejection_reasons },
                })
            }
            TicketCommand::Close => TicketEvent::Closed(ev::Closed {}),
            TicketCommand::RecordSurveySent { message_id } => TicketEvent::SurveySent(ev::SurveySent { message_id }),
            TicketCommand::AnswerSurvey { score, comment } => {
                TicketEvent::SurveyAnswered(ev::SurveyAnswered { score, personal: ev::SurveyComment { comment } })
            }
            TicketCommand::Reopen { reason } => TicketEvent::Reopened(ev::Reopened { reason }),
            TicketCommand::Reclassify { category, service_area, reason } => {
                let category = category.filter(|c| state.category != Some(*c));
                let service_area = service_area.filter(|a| state.service_area != Some(*a));
                if category.is_none() && service_area.is_none() {
                    return Err(DomainError::NothingToChange("the ticket already has that category and service area"));
                }
                TicketEvent::Reclassified(ev::Reclassified {
                    category,
                    service_area,
                    previous_category: state.category,
                    previous_service_area: state.service_area,
                    reason,
                })
            }
            TicketCommand::Assign { assignee } => {
                if state.assignee.as_ref() == Some(&assignee) {
                    return Err(DomainError::NothingToChange("the ticket is already assigned to them"));
                }
                TicketEvent::Assigned(ev::Assigned { assignee })
            }
            TicketCommand::Prioritise { priority, reason } => {
                if state.priority == priority {
                    return Err(DomainError::NothingToChange("the ticket already has that priority"));
                }
                TicketEvent::Prioritised(ev::Prioritised { priority, previous_priority: state.priority, reason })
            }
            TicketCommand::RecordCustomerReply { channel, message_id, from, body, attachments, reopen_window } => {
                let replied = TicketEvent::CustomerReplied(ev::CustomerReplied {
                    channel,
                    message_id,
                    personal: ev::CustomerMessage { from, body, attachments },
                });
                let reopens = !state.out_of_scope
                    && matches!(state.status, Resolved | Closed)
                    && state.resolved_at.is_some_and(|resolved| now <= resolved + reopen_window);
                if reopens {
                    let reason =
                        Reason::parse("the customer replied within the reopen window").expect("a fixed, valid reason");
                    return Ok(vec![replied, TicketEvent::Reopened(ev::Reopened { reason })]);
                }
                replied
            }
            TicketCommand::ReplyToCustomer { body } => {
                TicketEvent::AgentReplied(ev::AgentReplied { personal: ev::MessageText { body } })
            }
            TicketCommand::AddNote { body } => {
                TicketEvent::NoteAdded(ev::NoteAdded { personal: ev::MessageText { body } })
            }
            TicketCommand::MarkOutOfScope { reason } => TicketEvent::MarkedOutOfScope(ev::MarkedOutOfScope { reason }),
            TicketCommand::RecordSlaWarning { target, due_at } => {
                if state.sla_warned.contains(&target) {
                    return Err(DomainError::NothingToChange("this clock's warning is already recorded"));
                }
                TicketEvent::SlaWarned(ev::SlaWarned { target, due_at })
            }
            TicketCommand::RecordSlaBreach { target, due_at } => {
                if state.sla_breached.contains(&target) {
                    return Err(DomainError::NothingToChange("this clock's breach is already recorded"));
                }
                TicketEvent::SlaBreached(ev::SlaBreached { target, due_at })
            }
            TicketCommand::RestrictProcessing { reason, request_reference, hold_until } => {
                if state.personal_erased {
                    return Err(DomainError::NothingToChange("the ticket's personal data is already erased"));
                }
                if state.restricted.as_ref().is_some_and(|r| r.hold_until == hold_until) {
                    return Err(DomainError::NothingToChange("the ticket's processing is already restricted"));
                }
                TicketEvent::ProcessingRestricted(ev::ProcessingRestricted { reason, request_reference, hold_until })
            }
            TicketCommand::ErasePersonalData { reason, request_reference } => {
                if state.personal_erased {
                    return Err(DomainError::NothingToChange("the ticket's personal data is already erased"));
                }
                TicketEvent::PersonalDataErased(ev::PersonalDataErased { reason, request_reference })
            }
            TicketCommand::RecordSealing { events } => {
                if events.is_empty() {
                    return Err(DomainError::NothingToChange("no event was sealed"));
                }
                TicketEvent::PersonalDataSealed(ev::PersonalDataSealed { events })
            }
            TicketCommand::LinkContract { contract_id } => {
                if state.contract_id.as_ref() == Some(&contract_id) {
                    return Err(DomainError::NothingToChange("the ticket is already linked to that contract"));
                }
                TicketEvent::ContractLinked(ev::ContractLinked {
                    contract_id,
                    previous_contract_id: state.contract_id.clone(),
                })
            }
        };
        Ok(vec![event])
    }

    /// Applies one recorded event. Total: an event that does not fit the state it meets (which
    /// `decide` never produces) is still applied as recorded, never refused.
    pub fn evolve(mut self, event: &TicketEvent, at: DateTime<Utc>) -> Self {
        self.version += 1;
        if let TicketEvent::Received(received) = event {
            self.state = Some(TicketState {
                number: received.number,
                status: Received,
                channel: received.channel,
                category: received.category,
                service_area: received.service_area,
                contract_id: received.contract_id.clone(),
                priority: received.priority,
                language: received.language,
                reporter: received.personal.clone(),
                assignee: None,
                escalated_to: None,
                out_of_scope: false,
                survey: SurveyStatus::NotSent,
                received_at: at,
                first_contact_at: None,
                resolved_at: None,
                closed_at: None,
                sla_warned: Default::default(),
                sla_breached: Default::default(),
                outcome_to_inform: false,
                restricted: None,
                personal_erased: false,
            });
            return self;
        }
        let Some(state) = self.state.as_mut() else {
            return self;
        };
        match event {
            TicketEvent::Received(_) => unreachable!("handled above"),
            TicketEvent::Acknowledged(_) => state.status = Acknowledged,
            TicketEvent::Investigated(investigated) => {
                state.status = Investigating;
                state.category = Some(investigated.category);
                state.service_area = Some(investigated.service_area);
                state.first_contact_at.get_or_insert(at);
            }
            TicketEvent::Escalated(escalated) => {
                state.status = Escalated;
                state.escalated_to = Some(escalated.division.clone());
                // A new escalation has a new answer clock, warned and breached afresh.
                state.sla_warned.remove(&crate::sla::SlaTarget::EscalationAnswer);
                state.sla_breached.remove(&crate::sla::SlaTarget::EscalationAnswer);
            }
            TicketEvent::EscalationAnswered(_) => {
                state.status = Investigating;
                state.escalated_to = None;
                state.outcome_to_inform = true;
            }
            TicketEvent::Resolved(_) => {
                state.status = Resolved;
                state.resolved_at = Some(at);
            }
            TicketEvent::Closed(_) => {
                state.status = Closed;
                state.closed_at = Some(at);
            }
            TicketEvent::SurveySent(_) => state.survey = SurveyStatus::Sent,
            TicketEvent::SurveyAnswered(_) => state.survey = SurveyStatus::Answered,
            TicketEvent::Reopened(_) => {
                state.status = Investigating;
                state.out_of_scope = false;
                state.survey = SurveyStatus::NotSent;
                state.resolved_at = None;
                state.closed_at = None;
                state.escalated_to = None;
            }
            TicketEvent::Reclassified(reclassified) => {
                if let Some(category) = reclassified.category {
                    state.category = Some(category);
                }
                if let Some(area) = reclassified.service_area {
                    state.service_area = Some(area);
                }
            }
            TicketEvent::Assigned(assigned) => state.assignee = Some(assigned.assignee.clone()),
            TicketEvent::Prioritised(prioritised) => state.priority = prioritised.priority,
            TicketEvent::ContractLinked(linked) => state.contract_id = Some(linked.contract_id.clone()),
            TicketEvent::SlaWarned(warned) => {
                state.sla_warned.insert(warned.target);
            }
            TicketEvent::SlaBreached(breached) => {
                state.sla_breached.insert(breached.target);
            }
            TicketEvent::AgentReplied(_) => state.outcome_to_inform = false,
            TicketEvent::CustomerReplied(_) | TicketEvent::NoteAdded(_) | TicketEvent::PersonalDataSealed(_) => {}
            TicketEvent::ProcessingRestricted(restricted) => {
                state.restricted = Some(Restriction { since: at, hold_until: restricted.hold_until });
            }
            TicketEvent::PersonalDataErased(_) => {
                state.personal_erased = true;
                state.reporter = ev::ReporterDetails::erased();
            }
            TicketEvent::MarkedOutOfScope(_) => {
                state.status = Closed;
                state.out_of_scope = true;
                state.escalated_to = None;
                state.closed_at = Some(at);
            }
        }
        self
    }
}

fn received(receive: ReceiveTicket) -> TicketEvent {
    TicketEvent::Received(ev::Received {
        number: receive.number,
        channel: receive.channel,
        category: receive.category,
        service_area: receive.service_area,
        contract_id: receive.contract_id,
        priority: receive.priority,
        language: receive.language,
        personal: ev::ReporterDetails {
            name: receive.reporter_name,
            email: receive.reporter_email,
            reply_to: receive.reporter_reply_to,
            phone: receive.reporter_phone,
            subject: receive.subject,
            message: receive.message,
            attachments: receive.attachments,
        },
    })
}

impl TicketState {
    /// The invariants every reachable state holds. Returns the first one broken.
    pub fn invariant_violation(&self) -> Option<&'static str> {
        if (self.status == Escalated) != self.escalated_to.is_some() {
            return Some("a ticket names a division exactly while it is escalated");
        }
        if self.out_of_scope && self.status != Closed {
            return Some("an out-of-scope ticket is closed");
        }
        if self.survey != SurveyStatus::NotSent && (self.status != Closed || self.out_of_scope) {
            return Some("only a ticket closed after resolution has a survey");
        }
        let resolved_path = matches!(self.status, Resolved) || (self.status == Closed && !self.out_of_scope);
        if resolved_path && self.resolved_at.is_none() {
            return Some("a resolved or closed ticket has a resolution time");
        }
        let identified = matches!(self.status, Investigating | Escalated | Resolved) || resolved_path;
        if identified && (self.category.is_none() || self.service_area.is_none() || self.first_contact_at.is_none()) {
            return Some("an identified ticket has a category, a service area and a first contact");
        }
        if (self.status == Closed) != self.closed_at.is_some() {
            return Some("a ticket has a closing time exactly while it is closed");
        }
        None
    }
}
