//! `POST /api/v1/intake/email`: a mail server (or fetcher) delivers one raw message
//! (`message/rfc822`); it becomes a ticket, a reply on one, or is ignored (auto-replies,
//! bounces). Delivering the same message again changes nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ticket_mail::intake::{IntakeError, IntakeOutcome};
use utoipa::ToSchema;

use super::AppState;
use super::extract::MailDeliverer;
use super::problem::ApiError;

/// What became of a delivered message.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntakeResult {
    /// `created`, `replied`, `duplicate` or `ignored`.
    pub outcome: String,
    pub ticket_id: Option<uuid::Uuid>,
    pub number: Option<u64>,
    /// A reply that reopened its resolved ticket.
    pub reopened: bool,
    /// Why an ignored message was ignored.
    pub reason: Option<String>,
}

/// Takes in one customer e-mail, as raw RFC 5322 bytes.
#[utoipa::path(
    post, path = "/api/v1/intake/email", tag = "tickets",
    request_body(content = Vec<u8>, content_type = "message/rfc822", description = "The raw message, as received"),
    responses(
        (status = 201, description = "A new ticket", body = IntakeResult),
        (status = 200, description = "A reply on an existing ticket, or a message taken before (`duplicate`)", body = IntakeResult),
        (status = 202, description = "An automatic message (auto-reply, bounce): no ticket", body = IntakeResult),
        (status = 403, description = "Not an `intake` or `admin` token (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The message is too large (`payload_too_large`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `message/rfc822` (`unsupported_media_type`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The bytes are not a message with a sender (`unreadable_message`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn email(
    State(state): State<AppState>,
    MailDeliverer(_caller): MailDeliverer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("message/rfc822") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the raw message with Content-Type: message/rfc822",
        ));
    }
    let body = body.map_err(|_| ApiError::payload_too_large(state.mail_intake_max_bytes))?;
    let outcome = state.mail_intake.take(&body).await.map_err(|error| match error {
        IntakeError::Unreadable(reason) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable_message",
            "Not a message we can take",
            format!("{reason}; send the raw RFC 5322 message as the mail server received it"),
        ),
        IntakeError::Unavailable(reason) => ApiError::unavailable(reason),
    })?;
    let (status, result) = match outcome {
        IntakeOutcome::Created { ticket_id, number } => (
            StatusCode::CREATED,
            IntakeResult {
                outcome: "created".into(),
                ticket_id: Some(ticket_id.as_uuid()),
                number: Some(number.get()),
                reopened: false,
                reason: None,
            },
        ),
        IntakeOutcome::Replied { ticket_id, number, reopened } => (
            StatusCode::OK,
            IntakeResult {
                outcome: "replied".into(),
                ticket_id: Some(ticket_id.as_uuid()),
                number: Some(number.get()),
                reopened,
                reason: None,
            },
        ),
        IntakeOutcome::Duplicate { ticket_id } => (
            StatusCode::OK,
            IntakeResult {
                outcome: "duplicate".into(),
                ticket_id: Some(ticket_id.as_uuid()),
                number: None,
                reopened: false,
                reason: None,
            },
        ),
        IntakeOutcome::Ignored { reason } => (
            StatusCode::ACCEPTED,
            IntakeResult {
                outcome: "ignored".into(),
                ticket_id: None,
                number: None,
                reopened: false,
                reason: Some(reason),
            },
        ),
    };
    Ok((status, axum::Json(result)).into_response())
}
