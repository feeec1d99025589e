//! `POST /api/v1/contact`: the contact form's JSON twin, for the Norma product to call. Public
//! (no token), with the form's checks and abuse limits.

use std::net::SocketAddr;

use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use ticket_domain::vocabulary::Language;
use utoipa::ToSchema;

use super::AppState;
use super::extract::ApiJson;
use super::problem::{ApiError, FieldError};
use crate::intake::{Refusal, Submission, submit};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub name: String,
    pub email: String,
    pub subject: String,
    pub message: String,
    /// The customer's language (mails are written in it); Hungarian by default.
    pub language: Option<Language>,
    pub attachment: Option<ContactAttachment>,
}

/// A file sent with the report (the whole request is at most 256 KiB).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactAttachment {
    pub file_name: String,
    /// The file's bytes, base64 (standard alphabet, padded).
    pub content_base64: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactReceipt {
    pub id: uuid::Uuid,
    /// The number the customer quotes.
    pub number: u64,
}

/// A report from the public: creates a ticket on the `web_form` channel.
#[utoipa::path(
    post, path = "/api/v1/contact", tag = "tickets", request_body = ContactRequest, security(),
    responses(
        (status = 201, description = "The report is a ticket now", body = ContactReceipt),
        (status = 429, description = "Too many reports from this client or for this e-mail address (`rate_limited`); see Retry-After",
         body = super::problem::Problem, content_type = "application/problem+json",
         headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub async fn contact(
    State(state): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    json: ApiJson<ContactRequest>,
) -> Result<Response, ApiError> {
    let body = json.value;
    let attachment = match body.attachment {
        None => None,
        Some(file) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(file.content_base64.trim()).map_err(|e| {
                ApiError::validation(
                    "the attachment is not valid base64",
                    vec![FieldError { field: "attachment.content_base64".into(), problem: e.to_string() }],
                )
            })?;
            Some((file.file_name, bytes))
        }
    };
    let submission = Submission {
        name: body.name,
        email: body.email,
        subject: body.subject,
        message: body.message,
        language: body.language.unwrap_or_default(),
        attachment,
    };
    let client = connect.map(|c| c.0.0.ip());
    match submit(&state, client, submission).await {
        Ok((id, number)) => {
            let receipt = ContactReceipt { id: id.as_uuid(), number: number.get() };
            Ok((StatusCode::CREATED, axum::Json(receipt)).into_response())
        }
        Err(Refusal::Fields(problems)) => {
            let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
            let errors = problems
                .iter()
                .map(|(field, problem)| FieldError { field: (*field).to_owned(), problem: problem.text(Language::En) })
                .collect();
            Err(ApiError::validation(format!("fix these fields: {}", fields.join(", ")), errors))
        }
        Err(Refusal::RateLimited { retry_after_s }) => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many reports",
                format!("too many reports from this client or for this e-mail address; try again in {retry_after_s} s"),
            );
            let mut response = error.into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(Refusal::Unavailable(reason)) => Err(ApiError::unavailable(reason)),
    }
}
