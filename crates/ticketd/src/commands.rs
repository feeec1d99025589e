//! The one path from a request into the application, shared by the JSON API (`http/`) and
//! the staff console (`console/`): the request bodies and their parsing into domain commands
//! (every invalid field at once), who may run commands, `If-Match`, `Idempotency-Key`, and the
//! command service. Neither front end calls the other's handlers; both call [`parse`] and [`run`].

use axum::http::StatusCode;
use serde::Deserialize;
use ticket_app::{AppError, CommandContext};
use ticket_domain::vocabulary::*;
use ticket_domain::{ReceiveTicket, TicketCommand};
use utoipa::ToSchema;

use crate::auth::{self, Caller};
use crate::http::AppState;
use crate::http::problem::{ApiError, FieldError};
use crate::http::tickets::TicketView;
use crate::idempotency::{self, Claim};

/// Who may run commands on tickets: agents and admins. Quality managers and auditors read.
pub fn may_command(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::Agent | Role::Admin => Ok(()),
        other => Err(ApiError::forbidden(format!(
            "the role '{}' may read but not change tickets; commands need 'agent' or 'admin'",
            auth::role_name(other)
        ))),
    }
}

/// What identifies a request for its `Idempotency-Key`: a repeat must be the same request.
pub struct Fingerprint<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

/// What running a request gave.
#[derive(Debug)]
pub enum Answer {
    /// The ticket after the command (`replayed`: the command had already been applied).
    Ticket { status: StatusCode, view: TicketView, replayed: bool },
    /// The first answer to this `Idempotency-Key`, as stored (a ticket view or a problem).
    Stored { status: u16, body: String },
    /// The first request with this key is still running.
    InProgress,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Manual intake by an agent (phone, other channels), or by an integration.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    pub channel: Channel,
    pub reporter: ReporterInput,
    pub subject: String,
    pub message: String,
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub contract_id: Option<String>,
    /// How urgent; `normal` by default.
    pub priority: Option<Priority>,
    /// The customer's language for mails; Hungarian by default.
    pub language: Option<Language>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReporterInput {
    pub name: String,
    /// How to reach them: an e-mail address, a phone number, or both (one at least).
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractBody {
    /// A live contract's id (`GET /api/v1/contracts`).
    pub contract_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    /// The Message-ID of the confirmation mail, when one was sent.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigateBody {
    pub category: Category,
    pub service_area: ServiceArea,
    /// How the reporter was contacted first.
    pub contact_method: ContactMethod,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateBody {
    pub division: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationAnswerBody {
    pub outcome: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// What the customer is told.
    pub resolution: String,
    /// A short label for statistics ("billing-error").
    pub root_cause: String,
    /// True when solved within the agent's own authority (policy §7.4.1).
    pub within_own_authority: bool,
    /// For a complaint: `upheld` (the default), `partly_upheld` or `rejected`.
    pub complaint_outcome: Option<ComplaintOutcome>,
    /// Required when a complaint is rejected, whole or in part: why (told to the customer with
    /// the authority and conciliation body they can turn to).
    pub rejection_reasons: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The staff member's name (their API token's name).
    pub assignee: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityBody {
    pub priority: Priority,
    /// Why: the SLA targets may change with it.
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReclassifyBody {
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    /// Why: a ticket becoming or ceasing to be a complaint is a recorded decision.
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBodyInput {
    pub body: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswerBody {
    /// 1 (worst) to 5 (best).
    #[serde(deserialize_with = "ticket_domain::vocabulary::whole::deserialize")]
    pub score: u8,
    pub comment: Option<String>,
}

/// Collects every invalid field of a request, so the caller fixes them all at once.
#[derive(Default)]
pub struct Fields(pub Vec<FieldError>);

impl Fields {
    pub fn check<T>(&mut self, field: &str, result: Result<T, InvalidValue>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldError { field: field.to_owned(), problem: error.problem });
                None
            }
        }
    }
    pub fn optional<T>(
        &mut self,
        field: &str,
        value: Option<&str>,
        parse: fn(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        value.and_then(|v| self.check(field, parse(v)))
    }
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => {
                let fields: Vec<&str> = self.0.iter().map(|e| e.field.as_str()).collect();
                let detail = format!("fix these fields: {}", fields.join(", "));
                Err(ApiError::validation(detail, self.0))
            }
        }
    }
}

pub fn receive_command(body: &CreateTicket, number: TicketNumber) -> Result<ReceiveTicket, ApiError> {
    let mut fields = Fields::default();
    let name = fields.check("reporter.name", PersonName::parse(&body.reporter.name));
    let email = fields.optional("reporter.email", body.reporter.email.as_deref(), EmailAddress::parse);
    let phone = fields.optional("reporter.phone", body.reporter.phone.as_deref(), PhoneNumber::parse);
    if body.reporter.email.is_none() && body.reporter.phone.is_none() {
        fields.0.push(FieldError {
            field: "reporter.email".into(),
            problem: "give an e-mail address, a phone number, or both".into(),
        });
    }
    let subject = fields.check("subject", Subject::parse(&body.subject));
    let message = fields.check("message", MessageBody::parse(&body.message));
    let contract_id = fields.optional("contract_id", body.contract_id.as_deref(), ContractId::parse);
    let command = (|| {
        Some(ReceiveTicket {
            number,
            channel: body.channel,
            category: body.category,
            service_area: body.service_area,
            contract_id: contract_id.clone(),
            priority: body.priority.unwrap_or_default(),
            language: body.language.unwrap_or_default(),
            reporter_name: name?,
            reporter_email: email.clone(),
            reporter_reply_to: None,
            reporter_phone: phone.clone(),
            subject: subject?,
            message: message?,
            attachments: Vec::new(),
        })
    })();
    fields.finish(command)
}

// ---------------------------------------------------------------------------------------------
// Running a command, with If-Match and Idempotency-Key

/// Resolves `{id}`: a ticket id (UUID) or its human number.
pub async fn resolve_ticket(state: &AppState, id: &str) -> Result<TicketId, ApiError> {
    if let Ok(uuid) = uuid::Uuid::parse_str(id) {
        return Ok(TicketId::from_uuid(uuid));
    }
    let number = id
        .parse::<u64>()
        .ok()
        .and_then(|n| TicketNumber::new(n).ok())
        .ok_or_else(|| ApiError::not_found(format!("'{id}' is neither a ticket id nor a ticket number")))?;
    match state.numbers.resolve(number).await {
        Ok(Some(ticket)) => Ok(ticket),
        Ok(None) => Err(ApiError::not_found(format!("no ticket has the number {number}"))),
        Err(crate::numbers::NumberError::Store(e)) => Err(ApiError::from(AppError::Store(e))),
        Err(crate::numbers::NumberError::IndexBehind) => Err(ApiError::index_behind()),
    }
}

fn context(caller: &Caller, correlation_id: uuid::Uuid) -> CommandContext {
    CommandContext {
        actor: Actor::Staff { name: caller.name.clone(), role: caller.role },
        correlation_id,
        causation_id: None,
    }
}

/// What a request asks: a command on an existing ticket, or a new ticket.
pub enum Request<'a> {
    Command {
        ticket_id: TicketId,
        command: TicketCommand,
    },
    /// A new ticket, with the files already in the attachment store (the console's intake).
    Create {
        body: &'a CreateTicket,
        attachments: Vec<AttachmentRef>,
    },
}

/// Runs a request under its idempotency key, if any, and answers it.
pub async fn run(
    state: &AppState,
    caller: &Caller,
    if_match: Option<u64>,
    key: Option<String>,
    fingerprint: &Fingerprint<'_>,
    request: Request<'_>,
) -> Result<Answer, ApiError> {
    let preset_ticket = match &request {
        Request::Command { ticket_id, .. } => *ticket_id,
        Request::Create { .. } => TicketId::new(),
    };
    let Some(key) = key else {
        let (status, view, _) =
            execute(state, caller, if_match, request, preset_ticket, uuid::Uuid::now_v7(), Keyed::No).await?;
        return Ok(Answer::Ticket { status, view, replayed: false });
    };
    let hash = idempotency::request_hash(fingerprint.method, fingerprint.path, fingerprint.body);
    let claim = idempotency::claim(&state.database, &caller.name, &key, &hash, preset_ticket, state.idempotency_stale)
        .await
        .map_err(|e| ApiError::from(AppError::Store(e)))?;
    let (ticket_id, correlation_id, keyed) = match claim {
        Claim::Answered { status, body } => return Ok(Answer::Stored { status, body }),
        Claim::Mismatch => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key reused for a different request",
                "this Idempotency-Key was first used with another method, path or body; use a new key for a new request",
            ));
        }
        Claim::InProgress => return Ok(Answer::InProgress),
        Claim::Claimed { ticket_id, correlation_id } => (ticket_id, correlation_id, Keyed::First),
        // The first attempt has not answered in time (it died, or is merely slow): run the
        // command again with its ids. `execute_once` answers from its events if it applied.
        Claim::Abandoned { ticket_id, correlation_id } => (ticket_id, correlation_id, Keyed::TakenOver),
    };
    let request = match request {
        Request::Command { command, .. } => Request::Command { ticket_id, command },
        create => create,
    };
    match execute(state, caller, if_match, request, ticket_id, correlation_id, keyed).await {
        Ok((status, view, already_applied)) => {
            let body = serde_json::to_string(&view).unwrap_or_default();
            Ok(match remember(state, caller, &key, status, &body).await {
                Some((status, body)) => Answer::Stored { status, body },
                None => Answer::Ticket { status, view, replayed: already_applied },
            })
        }
        Err(error) if error.status.is_server_error() => {
            // Worth retrying: the next repeat takes the claim over at once, with the same ids.
            let _ = idempotency::release(&state.database, &caller.name, &key).await;
            Err(error)
        }
        Err(error) => {
            let body = serde_json::to_string(&error.problem).unwrap_or_default();
            match remember(state, caller, &key, error.status, &body).await {
                Some((status, body)) => Ok(Answer::Stored { status, body }),
                None => Err(error),
            }
        }
    }
}

/// Stores the answer to a key. `None` when it was stored; the first answer, when another attempt
/// stored one first (it is the answer to every attempt).
async fn remember(
    state: &AppState,
    caller: &Caller,
    key: &str,
    status: StatusCode,
    body: &str,
) -> Option<(u16, String)> {
    let status = status.as_u16();
    match idempotency::complete(&state.database, &caller.name, key, status, body).await {
        Ok(true) => None,
        Ok(false) => match idempotency::answer(&state.database, &caller.name, key).await {
            Ok(Some((status, body))) => Some((status, body)),
            _ => None,
        },
        Err(error) => {
            tracing::warn!(%error, "could not store an idempotent answer; a retry will be answered from the events");
            None
        }
    }
}

/// How a request runs: without an `Idempotency-Key`; as the first attempt under its key (a new
/// ticket's id was made up for it, so its stream is empty); or as the takeover of a stale claim
/// (the first attempt may have applied the command, or may yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyed {
    No,
    First,
    TakenOver,
}

async fn execute(
    state: &AppState,
    caller: &Caller,
    if_match: Option<u64>,
    request: Request<'_>,
    ticket_id: TicketId,
    correlation_id: uuid::Uuid,
    keyed: Keyed,
) -> Result<(StatusCode, TicketView, bool), ApiError> {
    let context = context(caller, correlation_id);
    let (status, outcome) = match request {
        Request::Create { body, attachments } => {
            // Validate before taking a number, so bad requests use none up.
            let probe = receive_command(body, TicketNumber::new(1).expect("1 is a ticket number"))?;
            // A contract named at intake must be one the registry holds.
            if let Some(contract_id) = &probe.contract_id {
                let link = TicketCommand::LinkContract { contract_id: contract_id.clone() };
                state
                    .registry
                    .check_references(&link)
                    .await
                    .map_err(crate::http::registry::registry_error)?
                    .map_err(ApiError::unknown_reference)?;
            }
            let registry = state.registry.current().await.map_err(crate::http::registry::registry_error)?;
            let contract_id = match probe.contract_id {
                Some(id) => Some(id),
                // Otherwise the reporter's address decides (or the default contract).
                None => registry.contract_for(probe.reporter_email.as_ref()).cloned(),
            };
            let number = state.service.next_number().await?;
            let mut receive = receive_command(body, number)?;
            receive.contract_id = contract_id;
            receive.attachments = attachments;
            let command = TicketCommand::Receive(receive);
            let outcome = match keyed {
                Keyed::No => state.service.execute_new(ticket_id, command, &context).await,
                Keyed::First => state.service.execute_once(ticket_id, None, command, &context, true).await,
                Keyed::TakenOver => state.service.execute_once(ticket_id, None, command, &context, false).await,
            };
            (StatusCode::CREATED, outcome)
        }
        Request::Command { ticket_id, command } => {
            state
                .registry
                .check_references(&command)
                .await
                .map_err(crate::http::registry::registry_error)?
                .map_err(ApiError::unknown_reference)?;
            let outcome = match keyed {
                Keyed::No => state.service.execute(ticket_id, if_match, command, &context).await,
                Keyed::First | Keyed::TakenOver => {
                    state.service.execute_once(ticket_id, if_match, command, &context, false).await
                }
            };
            (StatusCode::OK, outcome)
        }
    };
    match outcome {
        Ok(outcome) => {
            let view = super::http::tickets::view(outcome.ticket_id, &outcome.ticket)
                .ok_or_else(|| ApiError::internal("no state after a command"))?;
            if status == StatusCode::CREATED
                && let Ok(number) = TicketNumber::new(view.number)
            {
                // Acting on it by number at once must not depend on the index having caught up.
                state.numbers.remember(number, outcome.ticket_id);
            }
            Ok((status, view, outcome.already_applied))
        }
        Err(AppError::Refused(refusal)) => {
            let mut error = ApiError::from(AppError::Refused(refusal));
            // Say where the ticket stands and what it allows now.
            if error.status == StatusCode::CONFLICT
                && let Ok(ticket) = state.service.load(ticket_id).await
                && let Some(current) = super::http::tickets::view(ticket_id, &ticket)
            {
                error.problem.current_status = Some(current.status.name().to_owned());
                error.problem.allowed_actions = Some(current.allowed_actions);
            }
            Err(error)
        }
        Err(error) => Err(error.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing a workflow step into its domain command

/// A workflow step on an existing ticket, as either front end received it.
#[derive(Debug, Clone)]
pub enum Action {
    Acknowledge(AcknowledgeBody),
    Investigate(InvestigateBody),
    Escalate(EscalateBody),
    EscalationAnswer(EscalationAnswerBody),
    Resolve(ResolveBody),
    Close(EmptyBody),
    Reopen(ReasonBody),
    LinkContract(ContractBody),
    Assign(AssignBody),
    Prioritise(PriorityBody),
    Reclassify(ReclassifyBody),
    OutOfScope(ReasonBody),
    Note(MessageBodyInput),
    Reply(MessageBodyInput),
    SurveySent(AcknowledgeBody),
    SurveyAnswer(SurveyAnswerBody),
}

/// The domain command a step asks for, or every invalid field (`validation_failed`).
pub fn parse(action: &Action) -> Result<TicketCommand, ApiError> {
    let mut f = Fields::default();
    let command = build(action, &mut f);
    f.finish(command)
}

fn build(action: &Action, f: &mut Fields) -> Option<TicketCommand> {
    match action {
        Action::Acknowledge(b) => {
            let message_id = f.optional("message_id", b.message_id.as_deref(), MessageId::parse);
            Some(TicketCommand::Acknowledge { message_id })
        }
        Action::Investigate(b) => Some(TicketCommand::Investigate {
            category: b.category,
            service_area: b.service_area,
            contact_method: b.contact_method,
        }),
        Action::Escalate(b) => {
            let division = f.check("division", DivisionId::parse(&b.division));
            let reason = f.check("reason", Reason::parse(&b.reason));
            Some(TicketCommand::Escalate { division: division?, reason: reason? })
        }
        Action::EscalationAnswer(b) => {
            Some(TicketCommand::AnswerEscalation { outcome: f.check("outcome", Reason::parse(&b.outcome))? })
        }
        Action::Resolve(b) => {
            let resolution = f.check("resolution", MessageBody::parse(&b.resolution));
            let root_cause = f.check("root_cause", RootCause::parse(&b.root_cause));
            let rejection_reasons = f.optional("rejection_reasons", b.rejection_reasons.as_deref(), MessageBody::parse);
            if b.rejection_reasons.is_some() && rejection_reasons.is_none() {
                return None;
            }
            // What the body alone says is checked before the ticket is read (the domain checks it
            // again, with whether the ticket is a complaint).
            let rejection =
                matches!(b.complaint_outcome, Some(ComplaintOutcome::PartlyUpheld | ComplaintOutcome::Rejected));
            if rejection != b.rejection_reasons.is_some() {
                let problem = if rejection {
                    "a rejection, whole or in part, gives its reasons"
                } else {
                    "rejection reasons belong to a rejection"
                };
                f.0.push(FieldError { field: "rejection_reasons".into(), problem: problem.into() });
                return None;
            }
            Some(TicketCommand::Resolve {
                resolution: resolution?,
                root_cause: root_cause?,
                within_own_authority: b.within_own_authority,
                complaint_outcome: b.complaint_outcome.unwrap_or_default(),
                rejection_reasons,
            })
        }
        Action::Close(_) => Some(TicketCommand::Close),
        Action::Reopen(b) => Some(TicketCommand::Reopen { reason: f.check("reason", Reason::parse(&b.reason))? }),
        // Whether the registry holds it is checked with every other reference, before running.
        Action::LinkContract(b) => Some(TicketCommand::LinkContract {
            contract_id: f.check("contract_id", ContractId::parse(&b.contract_id))?,
        }),
        Action::Assign(b) => {
            Some(TicketCommand::Assign { assignee: f.check("assignee", StaffName::parse(&b.assignee))? })
        }
        Action::Prioritise(b) => Some(TicketCommand::Prioritise {
            priority: b.priority,
            reason: f.check("reason", Reason::parse(&b.reason))?,
        }),
        Action::Reclassify(b) => {
            let reason = f.check("reason", Reason::parse(&b.reason));
            if b.category.is_none() && b.service_area.is_none() {
                f.0.push(FieldError {
                    field: "category".into(),
                    problem: "give a category, a service area, or both".into(),
                });
            }
            Some(TicketCommand::Reclassify { category: b.category, service_area: b.service_area, reason: reason? })
        }
        Action::OutOfScope(b) => {
            Some(TicketCommand::MarkOutOfScope { reason: f.check("reason", Reason::parse(&b.reason))? })
        }
        Action::Note(b) => Some(TicketCommand::AddNote { body: f.check("body", MessageBody::parse(&b.body))? }),
        Action::Reply(b) => {
            Some(TicketCommand::ReplyToCustomer { body: f.check("body", MessageBody::parse(&b.body))? })
        }
        Action::SurveySent(b) => {
            let message_id = f.optional("message_id", b.message_id.as_deref(), MessageId::parse);
            Some(TicketCommand::RecordSurveySent { message_id })
        }
        Action::SurveyAnswer(b) => {
            let score = f.check("score", SurveyScore::new(b.score));
            let comment = f.optional("comment", b.comment.as_deref(), MessageBody::parse);
            Some(TicketCommand::AnswerSurvey { score: score?, comment })
        }
    }
}
