//! The data subject's rights (GDPR): `GET /api/v1/subjects/export` — everything held about one
//! person (right of access, Art. 15), and nothing about anyone else.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::{AttachmentRef, Role, TicketId};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::ApiError;
use crate::auth::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// The person's e-mail address (as reporter, reply-to or sender of a reply).
    pub email: Option<String>,
    /// The person's phone number.
    pub phone: Option<String>,
    /// `json` (the default) or `zip`: `export.json` with every file they sent beside it.
    pub format: Option<ExportFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Json,
    Zip,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectExport {
    /// Who the export is about, as asked.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub generated_at: DateTime<Utc>,
    pub tickets: Vec<SubjectTicket>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectTicket {
    pub ticket_id: uuid::Uuid,
    pub number: u64,
    pub status: String,
    pub channel: String,
    pub received_at: DateTime<Utc>,
    /// The person as the ticket holds them.
    pub reporter: super::tickets::ReporterView,
    pub subject: String,
    /// What they wrote and what was written to them, oldest first.
    pub messages: Vec<SubjectMessage>,
    /// Every step of the ticket (type and time; who in staff did it is not theirs to see).
    pub steps: Vec<SubjectStep>,
    /// The mails sent to them.
    pub mails: Vec<SubjectMail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectMessage {
    pub at: DateTime<Utc>,
    /// `customer` (theirs) or `company` (a reply or the resolution).
    pub by: String,
    pub text: String,
    pub attachments: Vec<AttachmentRef>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectStep {
    pub at: DateTime<Utc>,
    pub event_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectMail {
    pub kind: String,
    pub subject: Option<String>,
    pub recipient: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub message_id: String,
}

fn zip_of(document: Vec<u8>, files: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>, zip::result::ZipError> {
    use std::io::Write;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    archive.start_file("export.json", options)?;
    archive.write_all(&document)?;
    let mut seen = std::collections::HashSet::new();
    for (name, bytes) in files {
        if seen.insert(name.clone()) {
            archive.start_file(name, options)?;
            archive.write_all(&bytes)?;
        }
    }
    Ok(archive.finish()?.into_inner())
}

/// The tickets whose reporter is this person (by e-mail address, or else phone number), each
/// with its history. Candidates come from the queues' search text, each confirmed against the
/// ticket's reporter; a phone number is looked for as typed and by its last four digits
/// (however it was spaced).
pub async fn tickets_of(
    service: &ticket_app::TicketService,
    database: &event_store::Database,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<Vec<(TicketId, Vec<ticket_app::TicketRecord>)>, ApiError> {
    let needles: Vec<String> = match (email, phone) {
        (Some(email), _) => vec![email.to_lowercase()],
        (None, Some(phone)) => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            let last = digits.get(digits.len().saturating_sub(4)..).unwrap_or_default().to_owned();
            vec![phone.to_lowercase(), last]
        }
        (None, None) => return Ok(Vec::new()),
    };
    let store_error = |e| ApiError::from(ticket_app::AppError::Store(e));
    // The candidates come from a read model: it must hold every ticket committed before the
    // request, or the answer would silently miss a moment-old one.
    if !ticket_projections::caught_up(database, "ticket_view", crate::numbers::INDEX_WAIT_MAX)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::index_behind());
    }
    let mut candidates = Vec::new();
    for needle in needles.iter().filter(|n| !n.is_empty()) {
        candidates.extend(ticket_projections::queues::tickets_mentioning(database, needle).await.map_err(store_error)?);
    }
    candidates.sort_by_key(|(_, number)| *number);
    candidates.dedup();
    let mut tickets = Vec::new();
    for (id, _) in candidates {
        let ticket_id = TicketId::from_uuid(id);
        let history = service.history(ticket_id).await?;
        let Some(TicketEvent::Received(received)) = history.first().map(|r| &r.event) else { continue };
        let reporter = &received.personal;
        let theirs = email.is_some_and(|email| {
            [reporter.email.as_ref(), reporter.reply_to.as_ref()]
                .into_iter()
                .flatten()
                .any(|address| address.as_str().eq_ignore_ascii_case(email))
        }) || (email.is_none()
            && phone.is_some_and(|phone| reporter.phone.as_ref().is_some_and(|p| same_phone(p.as_str(), phone))));
        if theirs {
            tickets.push((ticket_id, history));
        }
    }
    Ok(tickets)
}

fn same_phone(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect::<String>();
    digits(a) == digits(b)
}

/// Everything held about one person, by e-mail address or phone number (admins: the
/// data-protection officer's request). A ticket is theirs when its reporter is them.
#[utoipa::path(
    get, path = "/api/v1/subjects/export", tag = "audit",
    params(SubjectQuery),
    responses(
        (status = 200, description = "The person's tickets, messages, mails and attachments (with `format=zip`: a ZIP of export.json and the files)", content(
            (SubjectExport = "application/json"),
            (Vec<u8> = "application/zip"),
        )),
        (status = 400, description = "Neither `email` nor `phone` given (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins export a person's data (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read models are behind the log (`index_behind`); retry in a moment", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SubjectQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden("a person's data is exported by admins"));
    }
    let invalid = |detail: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "A query parameter is invalid", detail)
    };
    let Query(query) = query.map_err(|e| invalid(e.body_text()))?;
    let email = query.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(str::to_lowercase);
    let phone = query.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
    if email.is_none() && phone.is_none() {
        return Err(invalid("give `email` or `phone`: whose data to export".into()));
    }
    let store_error = |e| ApiError::from(ticket_app::AppError::Store(e));
    let mut tickets = Vec::new();
    for (ticket_id, history) in tickets_of(&state.service, &state.database, email.as_deref(), phone.as_deref()).await? {
        let id = ticket_id.as_uuid();
        let Some(TicketEvent::Received(received)) = history.first().map(|r| &r.event) else { continue };
        let reporter = &received.personal;
        let ticket = state.service.load(ticket_id).await?;
        let Some(view) = super::tickets::view(ticket_id, &ticket) else { continue };
        let mut messages = vec![SubjectMessage {
            at: history[0].occurred_at,
            by: "customer".into(),
            text: reporter.message.to_string(),
            attachments: reporter.attachments.clone(),
        }];
        for record in &history[1..] {
            let (by, text, attachments) = match &record.event {
                TicketEvent::CustomerReplied(e) => {
                    ("customer", e.personal.body.to_string(), e.personal.attachments.clone())
                }
                TicketEvent::AgentReplied(e) => ("company", e.personal.body.to_string(), Vec::new()),
                TicketEvent::Resolved(e) => {
                    let mut text = e.personal.resolution.to_string();
                    if let Some(reasons) = &e.personal.rejection_reasons {
                        text = format!("{text}\n\n{reasons}");
                    }
                    ("company", text, Vec::new())
                }
                _ => continue,
            };
            messages.push(SubjectMessage { at: record.occurred_at, by: by.into(), text, attachments });
        }
        let outbox = ticket_mail::outbox::for_ticket(&state.database, ticket_id).await.map_err(store_error)?;
        // Mails to the customer only: not the agents' notifications, escalations or breach alerts.
        let mails = outbox
            .into_iter()
            .filter(|row| matches!(row.kind.as_str(), "confirmation" | "reply" | "resolution" | "survey"))
            .map(|row| SubjectMail {
                kind: row.kind,
                subject: row.subject,
                recipient: row.recipient,
                sent_at: row.sent_us.and_then(DateTime::from_timestamp_micros),
                message_id: row.message_id,
            })
            .collect();
        tickets.push(SubjectTicket {
            ticket_id: id,
            number: view.number,
            status: crate::console::labels::api_name(&view.status),
            channel: crate::console::labels::api_name(&view.channel),
            received_at: view.received_at,
            reporter: view.reporter,
            subject: view.subject,
            messages,
            steps: history
                .iter()
                .map(|r| SubjectStep { at: r.occurred_at, event_type: r.event.event_type().to_owned() })
                .collect(),
            mails,
        });
    }
    let body = SubjectExport { email, phone, generated_at: state.service.clock().now(), tickets };
    if query.format != Some(ExportFormat::Zip) {
        return Ok(axum::Json(body).into_response());
    }
    // The ZIP: the same document, and each file under files/<ticket number>/<sha256>/<name>.
    let mut files = Vec::new();
    for ticket in &body.tickets {
        for attachment in ticket.messages.iter().flat_map(|m| &m.attachments) {
            let Some(bytes) = state
                .privacy
                .attachments
                .get(&attachment.sha256)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
            else {
                continue;
            };
            let name = attachment.file_name.replace(['/', '\\'], "_");
            files.push((format!("files/{}/{}/{name}", ticket.number, attachment.sha256), bytes));
        }
    }
    let document = serde_json::to_vec_pretty(&body).map_err(|e| ApiError::internal(e.to_string()))?;
    let archive = tokio::task::spawn_blocking(move || zip_of(document, files))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/zip".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"export.zip\"".to_owned()),
        ],
        archive,
    )
        .into_response())
}

/// An erasure request (GDPR Art. 17): whose data, why, and the request's reference.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// The person's e-mail address (give it or `phone`).
    pub email: Option<String>,
    /// The person's phone number (when there is no address).
    pub phone: Option<String>,
    /// Why (recorded with the erasure; no personal data here).
    pub reason: String,
    /// The request's reference (the data-protection officer's case number).
    pub request_reference: String,
}

/// What an erasure request did to each of the person's tickets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReport {
    pub request_reference: String,
    pub tickets: Vec<crate::privacy::TicketOutcome>,
}

/// Erases a person's personal data from every ticket of theirs (admins). A ticket that is or
/// was a complaint is kept five years after its answer (Act CLV of 1997 §17/A): its processing
/// is restricted at once (out of every queue) and its data erased when the hold ends. The
/// history then reads "[erased]" for every personal field; statistics and the ledger are
/// unchanged; a `PersonalDataErased` event records who, when and why.
#[utoipa::path(
    post, path = "/api/v1/subjects/erase", tag = "audit", request_body = ErasureRequest,
    responses(
        (status = 200, description = "What became of each of the person's tickets", body = ErasureReport),
        (status = 403, description = "Only admins erase a person's data (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither `email` nor `phone`, or a field is invalid (`validation_failed`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read models are behind the log (`index_behind`); retry in a moment", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    json: super::extract::ApiJson<ErasureRequest>,
) -> Result<Response, ApiError> {
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden("a person's data is erased by admins"));
    }
    let body = json.value;
    let mut fields = crate::commands::Fields(Vec::new());
    let reason = fields.check("reason", ticket_domain::vocabulary::Reason::parse(&body.reason));
    let reference =
        fields.check("request_reference", ticket_domain::vocabulary::Reason::parse(&body.request_reference));
    // Each given is checked as the API checks a reporter's (a malformed one is refused, not ignored).
    let email = fields
        .optional("email", body.email.as_deref(), ticket_domain::vocabulary::EmailAddress::parse)
        .map(|e| e.as_str().to_lowercase());
    let phone = fields
        .optional("phone", body.phone.as_deref(), ticket_domain::vocabulary::PhoneNumber::parse)
        .map(|p| p.as_str().to_owned());
    if body.email.is_none() && body.phone.is_none() {
        fields.0.push(super::problem::FieldError {
            field: "email".into(),
            problem: "give `email` or `phone`: whose data to erase".into(),
        });
    }
    let request = fields
        .finish(reason.zip(reference).map(|(reason, reference)| crate::privacy::Request { reason, reference }))?;
    let context = ticket_app::CommandContext::new(ticket_domain::vocabulary::Actor::Staff {
        name: caller.name.clone(),
        role: caller.role,
    });
    let mut outcomes = Vec::new();
    for (ticket_id, _) in tickets_of(&state.service, &state.database, email.as_deref(), phone.as_deref()).await? {
        outcomes.push(state.privacy.erase_or_restrict(ticket_id, &request, &context).await?);
    }
    tracing::info!(reference = %request.reference, tickets = outcomes.len(), "erasure request carried out");
    Ok(axum::Json(ErasureReport { request_reference: request.reference.to_string(), tickets: outcomes })
        .into_response())
}
