//! `/api/v1/tickets`: intake, the workflow's commands, the ticket and its history.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticket_app::{AppError, TicketRecord};
use ticket_domain::vocabulary::*;
use ticket_domain::{Status, SurveyStatus, Ticket, TicketEvent};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{Agent, ApiJson, IdempotencyKey, IfMatch};
use super::problem::{ApiError, Problem};
use crate::auth::Caller;
use crate::commands::{self, Action, Answer, Fingerprint, Request};
pub use crate::commands::{
    AcknowledgeBody, AssignBody, ContractBody, CreateTicket, EmptyBody, EscalateBody, EscalationAnswerBody,
    InvestigateBody, MessageBodyInput, PriorityBody, ReasonBody, ReclassifyBody, ReporterInput, ResolveBody,
    SurveyAnswerBody,
};
use crate::idempotency;

// ---------------------------------------------------------------------------------------------
// Responses

/// A ticket as it stands. Its `version` is also its `ETag`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: uuid::Uuid,
    /// The short number customers quote.
    pub number: u64,
    /// The number of events in the ticket's history; send it back as `If-Match`.
    pub version: u64,
    pub status: Status,
    pub channel: Channel,
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub contract_id: Option<String>,
    /// How urgent: contracts may set SLA targets per priority.
    pub priority: Priority,
    pub language: Language,
    pub subject: String,
    pub reporter: ReporterView,
    pub assignee: Option<String>,
    /// The division holding the ticket while it is escalated.
    pub escalated_to: Option<String>,
    pub out_of_scope: bool,
    pub survey: SurveyStatus,
    pub received_at: DateTime<Utc>,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The actions (`POST /tickets/{id}/{action}`) the workflow allows now.
    pub allowed_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReporterView {
    pub name: String,
    /// For an e-mail, its `From:` address.
    pub email: Option<String>,
    /// Where customer mail goes instead of `email`: the e-mail's `Reply-To:` when it named
    /// another address.
    #[serde(default)]
    pub reply_to: Option<String>,
    pub phone: Option<String>,
    /// Files sent with the report: `GET /api/v1/tickets/{id}/attachments/{sha256}` serves each.
    pub attachments: Vec<ticket_domain::vocabulary::AttachmentRef>,
}

pub fn view(ticket_id: TicketId, ticket: &Ticket) -> Option<TicketView> {
    let state = ticket.state()?;
    Some(TicketView {
        id: ticket_id.as_uuid(),
        number: state.number.get(),
        version: ticket.version(),
        status: state.status,
        channel: state.channel,
        category: state.category,
        service_area: state.service_area,
        contract_id: state.contract_id.as_ref().map(|c| c.to_string()),
        priority: state.priority,
        language: state.language,
        subject: state.reporter.subject.to_string(),
        reporter: ReporterView {
            name: state.reporter.name.to_string(),
            email: state.reporter.email.as_ref().map(|e| e.to_string()),
            reply_to: state.reporter.reply_to.as_ref().map(|e| e.to_string()),
            phone: state.reporter.phone.as_ref().map(|p| p.to_string()),
            attachments: state.reporter.attachments.clone(),
        },
        assignee: state.assignee.as_ref().map(|a| a.to_string()),
        escalated_to: state.escalated_to.as_ref().map(|d| d.to_string()),
        out_of_scope: state.out_of_scope,
        survey: state.survey,
        received_at: state.received_at,
        first_contact_at: state.first_contact_at,
        resolved_at: state.resolved_at,
        closed_at: state.closed_at,
        allowed_actions: ticket
            .allowed_commands()
            .into_iter()
            .filter(|kind| kind.is_api_action())
            .map(|kind| kind.name().to_owned())
            .collect(),
    })
}

/// One event of a ticket's history, with its envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub event_id: uuid::Uuid,
    pub version: u64,
    /// The event's place in the global order of all events.
    pub position: i64,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// Who caused it: `{"kind": "staff", "name", "role"}`, `{"kind": "customer", "channel"}` or
    /// `{"kind": "system", "component"}`.
    #[schema(value_type = Object)]
    pub actor: serde_json::Value,
    pub correlation_id: uuid::Uuid,
    pub causation_id: Option<uuid::Uuid>,
    /// The event's data; personal data sits under `personal`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

pub fn event_view(record: &TicketRecord) -> EventView {
    let stored = ticket_domain::codec::encode(&record.event);
    EventView {
        event_id: record.event_id,
        version: record.version,
        position: record.position.0,
        event_type: stored.event_type.to_owned(),
        schema_version: stored.schema_version,
        occurred_at: record.occurred_at,
        recorded_at: record.recorded_at,
        actor: serde_json::to_value(&record.actor).unwrap_or_default(),
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        payload: stored.payload,
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub ticket_id: uuid::Uuid,
    pub events: Vec<EventView>,
}

fn ticket_response(status: StatusCode, body: &TicketView, replayed: bool) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", body.version)) {
        headers.insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tickets/{}", body.id))
    {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Intake: create a ticket (agents; phone and other channels, or integrations).
#[utoipa::path(
    post, path = "/api/v1/tickets", tag = "tickets", request_body = CreateTicket,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries: the same key returns the first answer")),
    responses(
        (status = 201, description = "The ticket was created", body = TicketView,
         headers(("ETag" = String, description = "The ticket's version"), ("Location" = String, description = "The ticket's URL"))),
    )
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    Agent(caller): Agent,
    IdempotencyKey(key): IdempotencyKey,
    json: ApiJson<CreateTicket>,
) -> Result<Response, ApiError> {
    let fingerprint = Fingerprint { method: json.method.as_str(), path: &json.path, body: &json.raw };
    let answer = commands::run(
        &state,
        &caller,
        None,
        key,
        &fingerprint,
        Request::Create { body: &json.value, attachments: Vec::new() },
    )
    .await?;
    Ok(answer_response(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    /// An RFC 3339 instant: the ticket exactly as it stood then (its events recorded up to
    /// that instant, replayed).
    pub as_of: Option<String>,
}

/// The ticket as it stands, or as it stood at `as_of`; `{id}` is its id or its number.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id (UUID) or number"), TicketQuery),
    responses(
        (status = 200, description = "The ticket", body = TicketView, headers(("ETag" = String, description = "The ticket's version"))),
        (status = 400, description = "`as_of` is not an RFC 3339 instant (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "A query parameter is invalid", e.body_text())
    })?;
    let as_of = match query.as_of.as_deref() {
        None => None,
        Some(text) => Some(DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "A query parameter is invalid",
                format!("as_of must be an RFC 3339 instant like 2026-03-02T09:00:00Z: {e}"),
            )
        })?),
    };
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let ticket = match as_of {
        None => state.service.load(ticket_id).await?,
        Some(instant) => state.service.load_as_of(ticket_id, instant).await.map_err(|error| match error {
            AppError::NotFound(_) => ApiError::not_found(format!("ticket {id} had not been received at {instant}")),
            other => other.into(),
        })?,
    };
    let view = view(ticket_id, &ticket).ok_or_else(|| ApiError::not_found(format!("ticket {id} does not exist")))?;
    Ok(ticket_response(StatusCode::OK, &view, false))
}

/// The ticket's full history: every event with its envelope.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/events", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id (UUID) or number")),
    responses((status = 200, description = "Every event, oldest first", body = HistoryView))
)]
pub async fn get_events(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let history = state.service.history(ticket_id).await?;
    let body = HistoryView { ticket_id: ticket_id.as_uuid(), events: history.iter().map(event_view).collect() };
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    /// The record's language: `hu` (the default) or `en`.
    pub lang: Option<Language>,
}

/// The complaint record of Act CLV of 1997 §17/A (5), printable: the complainant, the place,
/// time and manner of the complaint, its description and evidence, the company's position,
/// who recorded it, where and when, its identifier, and a copy of the written answer with when
/// it was sent. Marked when the answer came after the statutory deadline.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/complaint-record", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id (UUID) or number"), RecordQuery),
    responses(
        (status = 200, description = "The record, HTML with print styles", content_type = "text/html", body = String),
        (status = 400, description = "`lang` is not `hu` or `en` (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The ticket never was a complaint (`not_a_complaint`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complaint_record(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<RecordQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "A query parameter is invalid", e.body_text())
    })?;
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let history = state.service.history(ticket_id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(format!("ticket {id} does not exist")));
    }
    let outbox = ticket_mail::outbox::for_ticket(&state.database, ticket_id)
        .await
        .map_err(|e| ApiError::from(AppError::Store(e)))?;
    let context = crate::record::RecordContext {
        outbox: &outbox,
        answer_days: state.complaint_answer_days,
        now: state.service.clock().now(),
        company: &state.company,
        language: query.lang.unwrap_or(Language::Hu),
    };
    let markup = crate::record::render(&history, &context).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_a_complaint",
            "Not a complaint",
            format!("ticket {id} never was a complaint: §17/A records are kept for complaints"),
        )
    })?;
    Ok(markup.into_response())
}

/// Runs a workflow step from a parsed body, through the path the console shares.
async fn command<T>(
    state: AppState,
    caller: Caller,
    id: String,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<T>,
    action: fn(T) -> Action,
) -> Result<Response, ApiError> {
    let ApiJson { value, raw, method, path } = json;
    let command = commands::parse(&action(value))?;
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let fingerprint = Fingerprint { method: method.as_str(), path: &path, body: &raw };
    let answer =
        commands::run(&state, &caller, if_match.0, key.0, &fingerprint, Request::Command { ticket_id, command })
            .await?;
    Ok(answer_response(answer))
}

/// The HTTP answer to what running a request gave.
fn answer_response(answer: Answer) -> Response {
    match answer {
        Answer::Ticket { status, view, replayed } => ticket_response(status, &view, replayed),
        Answer::Stored { status, body } => replay(status, &body),
        Answer::InProgress => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "The first request with this Idempotency-Key is still running",
                format!("retry in {} s to get its answer", idempotency::RETRY_AFTER_SECONDS),
            )
            .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(idempotency::RETRY_AFTER_SECONDS));
            response
        }
    }
}

fn replay(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(view) = serde_json::from_str::<TicketView>(body)
        && status.is_success()
    {
        return ticket_response(status, &view, true);
    }
    let mut response = (status, body.to_owned()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// The confirmation reached the customer (sent by mail, or told in person).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/acknowledge", tag = "workflow", request_body = AcknowledgeBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<AcknowledgeBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Acknowledge).await
}

/// Identify the report and record the first contact; investigation starts.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/investigate", tag = "workflow", request_body = InvestigateBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn investigate(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<InvestigateBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Investigate).await
}

/// Hand the ticket to a division (outside the agent's authority).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/escalate", tag = "workflow", request_body = EscalateBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn escalate(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<EscalateBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Escalate).await
}

/// Record the division's outcome; the ticket returns to the agent.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/escalation-answer", tag = "workflow", request_body = EscalationAnswerBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn escalation_answer(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<EscalationAnswerBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::EscalationAnswer).await
}

/// Resolve the ticket; the customer is informed.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/resolve", tag = "workflow", request_body = ResolveBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn resolve(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<ResolveBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Resolve).await
}

/// Close a resolved ticket (the satisfaction survey follows).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/close", tag = "workflow", request_body = EmptyBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn close(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<EmptyBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Close).await
}

/// Send a resolved or closed ticket back to investigation.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/reopen", tag = "workflow", request_body = ReasonBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn reopen(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<ReasonBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Reopen).await
}

/// Link the ticket to a service contract (intake links it from the reporter's address; this
/// corrects or completes that).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/contract", tag = "workflow", request_body = ContractBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn link_contract(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<ContractBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::LinkContract).await
}

/// Give the ticket to a member of staff.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/assign", tag = "workflow", request_body = AssignBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn assign(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<AssignBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Assign).await
}

/// Change how urgent the ticket is (with a reason); its SLA due times follow the contract's
/// targets for the new priority.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/priority", tag = "workflow", request_body = PriorityBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn prioritise(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<PriorityBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Prioritise).await
}

/// Correct the category or service area (with a reason).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/reclassify", tag = "workflow", request_body = ReclassifyBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn reclassify(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<ReclassifyBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Reclassify).await
}

/// Close the ticket as outside the policy's scope (no survey).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/out-of-scope", tag = "workflow", request_body = ReasonBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn out_of_scope(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<ReasonBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::OutOfScope).await
}

/// Add an internal note (never shown to the customer).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/notes", tag = "workflow", request_body = MessageBodyInput,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn notes(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<MessageBodyInput>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Note).await
}

/// Write to the customer; the message becomes part of the ticket's record.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/replies", tag = "workflow", request_body = MessageBodyInput,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn replies(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<MessageBodyInput>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::Reply).await
}

/// Record that the satisfaction survey was sent (by an external mailer).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/survey-sent", tag = "workflow", request_body = AcknowledgeBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn survey_sent(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<AcknowledgeBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::SurveySent).await
}

/// Record the customer's satisfaction-survey answer (e.g. given by phone).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/survey-answer", tag = "workflow", request_body = SurveyAnswerBody,
    params(("id" = String, Path, description = "The ticket's id or number"), ("If-Match" = Option<String>, Header, description = "The version the command was decided on"), ("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe retries")),
    responses((status = 200, description = "The ticket after the command", body = TicketView)))]
pub async fn survey_answer(
    State(state): State<AppState>,
    Agent(caller): Agent,
    Path(id): Path<String>,
    if_match: IfMatch,
    key: IdempotencyKey,
    json: ApiJson<SurveyAnswerBody>,
) -> Result<Response, ApiError> {
    command(state, caller, id, if_match, key, json, Action::SurveyAnswer).await
}

/// A file the customer sent with this ticket (with the report or a reply), as they sent it.
/// Agents, auditors and admins only: attachments are personal data.
#[utoipa::path(
    get, path = "/api/v1/tickets/{id}/attachments/{sha256}", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id or number"), ("sha256" = String, Path, description = "The file's SHA-256, as the ticket lists it")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>,
         headers(("Content-Disposition" = String, description = "attachment; with the file's name"))),
        (status = 403, description = "The caller's role may not read attachments (`forbidden`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sha256)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if caller.role == ticket_domain::vocabulary::Role::QualityManager {
        return Err(ApiError::forbidden("attachments are personal data: agents, auditors and admins may read them"));
    }
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let history = state.service.history(ticket_id).await?;
    let attachment = history
        .iter()
        .flat_map(|record| match &record.event {
            TicketEvent::Received(received) => received.personal.attachments.as_slice(),
            TicketEvent::CustomerReplied(replied) => replied.personal.attachments.as_slice(),
            _ => &[],
        })
        .find(|a| a.sha256 == sha256)
        .cloned()
        .ok_or_else(|| ApiError::not_found("this ticket has no attachment with that hash"))?;
    let bytes = state
        .intake
        .attachments
        .get(&attachment.sha256)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::internal(format!("attachment {} is missing from the attachment store", attachment.sha256))
        })?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&attachment.media_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let encoded: String = attachment
        .file_name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// One SLA clock of a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlaClockView {
    pub target: ticket_domain::sla::SlaTarget,
    /// When it warns (at the warning share of its target: 80% unless the service or the contract
    /// says otherwise).
    pub warn_at: Option<DateTime<Utc>>,
    /// `null` while paused (waiting for the customer) before reaching it.
    pub due_at: Option<DateTime<Utc>>,
    /// When its step was done; `null` while it runs.
    pub met_at: Option<DateTime<Utc>>,
    pub paused: bool,
    /// Whether its warning, and its breach, are recorded as events.
    pub warned: bool,
    pub breached: bool,
    /// Business seconds left until `due_at` (negative: overdue) while it runs.
    pub business_seconds_left: Option<i64>,
}

/// The ticket's SLA clocks: first contact and resolution (from its contract's targets, in
/// business hours) and, for complaints, the statutory 30-day answer. They follow the ticket's
/// events within moments.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/sla", tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id or number")),
    responses((status = 200, description = "The clocks", body = Vec<SlaClockView>)))]
pub async fn get_sla(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ticket_id = commands::resolve_ticket(&state, &id).await?;
    let now = state.service.clock().now();
    let clocks = ticket_projections::sla_clocks::clocks_of(&state.database, ticket_id)
        .await
        .map_err(|e| ApiError::from(AppError::Store(e)))?;
    // Business time is counted in the calendar of the ticket's contract.
    let ticket = state.service.load(ticket_id).await?;
    let registry = state.registry.current().await.map_err(super::registry::registry_error)?;
    let contract = ticket.state().and_then(|s| s.contract_id.as_ref());
    let calendar = registry.calendar_for(contract, &state.calendar);
    let views: Vec<SlaClockView> = clocks
        .into_iter()
        .map(|clock| SlaClockView {
            target: clock.target,
            warn_at: clock.warn_at,
            due_at: clock.due_at,
            met_at: clock.met_at,
            paused: clock.paused,
            warned: clock.warned,
            breached: clock.breached,
            business_seconds_left: clock
                .due_at
                .filter(|_| clock.met_at.is_none())
                .map(|due| calendar.left_until(now, due).num_seconds()),
        })
        .collect();
    Ok(axum::Json(views).into_response())
}
