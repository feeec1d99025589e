//! The one error type of the HTTP edge: RFC 9457 `application/problem+json` with a stable
//! `code`. Internal errors become a 500 whose details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ticket_app::AppError;
use ticket_domain::DomainError;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:ticketd:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    pub status: u16,
    /// What went wrong this time, and what to do about it.
    pub detail: String,
    /// The stable, machine-readable code (`invalid_transition`, `version_conflict`, …).
    pub code: String,
    /// For `invalid_transition`: the ticket's status now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// For `invalid_transition`: the actions allowed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<String>>,
    /// For `version_conflict`: the ticket's version now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// For `validation_failed`: one entry per field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// For `unknown_division`, `unknown_contract`, `unknown_staff`: the ids the registry holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: Problem,
    /// Logged, never sent (internal errors).
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            problem: Problem {
                kind: format!("urn:ticketd:problem:{code}"),
                title: title.to_owned(),
                status: status.as_u16(),
                detail: detail.into(),
                code: code.to_owned(),
                current_status: None,
                allowed_actions: None,
                current_version: None,
                errors: None,
                known: None,
            },
            internal: None,
        }
    }

    /// 400: the body is not JSON at all.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", "The request body is not valid JSON", detail)
    }
    /// 400: a header has a value we cannot read.
    pub fn invalid_header(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_header", "A request header is invalid", detail)
    }
    /// 401
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            "send 'Authorization: Bearer <token>' with a live API token (create one with `ticketd token create`)",
        )
    }
    /// 403
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed for this role", detail)
    }
    /// 404
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }
    /// 413
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
            format!("send at most {limit_bytes} bytes"),
        )
    }
    /// 415
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as 'Content-Type: application/json'",
        )
    }
    /// 422: well-formed JSON that does not describe a valid request.
    pub fn validation(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let mut error =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "The request is not valid", detail);
        error.problem.errors = Some(errors);
        error
    }
    /// 500: details go to the log only.
    pub fn internal(internal: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "the service failed; the failure is logged. Nothing was half-written: it is safe to retry",
        );
        error.internal = Some(internal.into());
        error
    }
    /// 422: a command names managed data the registry does not hold (`unknown_division`,
    /// `unknown_contract`, `unknown_staff`), with what it does hold.
    pub fn unknown_reference(unknown: ticket_domain::registry::UnknownReference) -> Self {
        use ticket_domain::registry::UnknownReference;
        let (code, what, listing) = match &unknown {
            UnknownReference::Division { .. } => ("unknown_division", "division", "GET /api/v1/divisions"),
            UnknownReference::Contract { .. } => ("unknown_contract", "live contract", "GET /api/v1/contracts"),
            UnknownReference::Staff { .. } => ("unknown_staff", "member of staff", "GET /api/v1/staff"),
        };
        let known = unknown.known();
        let detail = if known.is_empty() {
            format!("{unknown}; no {what} is registered yet (an admin adds them; {listing} lists them)")
        } else {
            format!("{unknown}; known: {} ({listing})", known.join(", "))
        };
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Unknown reference", detail.clone());
        error.problem.errors = Some(vec![FieldError { field: unknown.field().to_owned(), problem: detail }]);
        error.problem.known = Some(known.to_vec());
        error
    }
    /// 503: the number index has not caught up with the log in time.
    pub fn index_behind() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "index_behind",
            "The ticket number index is behind",
            "the number index has not caught up with the log in time (see /readyz); retry in a moment, or name the \
             ticket by its id",
        )
    }
    /// 503
    pub fn unavailable(internal: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "The store is unavailable",
            "the database did not answer; nothing was written. Retry in a moment",
        );
        error.internal = Some(internal.into());
        error
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Refused(refusal) => refused(refusal),
            AppError::NotFound(id) => Self::not_found(format!("ticket {id} does not exist")),
            AppError::VersionMismatch { expected, actual } => {
                let mut error = Self::new(
                    StatusCode::PRECONDITION_FAILED,
                    "version_conflict",
                    "The ticket has changed",
                    format!(
                        "the ticket is at version {actual}, not {expected} (If-Match): reload it, check the change, and retry with If-Match: \"{actual}\""
                    ),
                );
                error.problem.current_version = Some(actual);
                error
            }
            AppError::Contended { attempts } => Self::new(
                StatusCode::CONFLICT,
                "contended",
                "The ticket is busy",
                format!(
                    "the ticket changed {attempts} times while this command was decided; nothing was written. Retry"
                ),
            ),
            AppError::Store(event_store::StoreError::Unavailable(reason)) => Self::unavailable(reason),
            other => Self::internal(other.to_string()),
        }
    }
}

fn refused(refusal: DomainError) -> ApiError {
    let detail = refusal.to_string();
    match refusal {
        DomainError::NotReceived { .. } => ApiError::not_found("the ticket does not exist"),
        DomainError::NothingToChange(_) => {
            ApiError::new(StatusCode::CONFLICT, "nothing_to_change", "Nothing would change", detail)
        }
        DomainError::ComplaintOutcome(_) => ApiError::validation(
            detail.clone(),
            vec![super::problem::FieldError { field: "complaint_outcome".into(), problem: detail }],
        ),
        DomainError::PersonalDataErased { .. } => {
            ApiError::new(StatusCode::CONFLICT, "personal_data_erased", "The ticket's personal data was erased", detail)
        }
        DomainError::OutcomeNotInformed => ApiError::new(
            StatusCode::CONFLICT,
            "outcome_not_informed",
            "The reporter has not been told the outcome",
            detail,
        ),
        DomainError::InvalidTransition { status, .. } => {
            let mut error =
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", "Not allowed in the ticket's state", detail);
            error.problem.current_status = Some(status.name().to_owned());
            error
        }
        _ => ApiError::new(StatusCode::CONFLICT, "invalid_transition", "Not allowed in the ticket's state", detail),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(internal) = self.internal {
            // The logging layer reads this and logs it; it is removed before sending.
            response.extensions_mut().insert(InternalDetail(internal));
        }
        response
    }
}

/// The logged-only details of a 5xx, carried to the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// Turns any non-JSON error body axum may produce (an unknown route, a wrong method) into
/// problem+json.
pub fn from_status(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no such route; see /api/v1/openapi.json"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "Method not allowed",
            "this route does not take that method; see /api/v1/openapi.json",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(super::REQUEST_BODY_BYTES_MAX),
        other => {
            ApiError::new(other, "http_error", other.canonical_reason().unwrap_or("Error"), "see /api/v1/openapi.json")
        }
    }
}
