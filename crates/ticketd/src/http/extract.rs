//! Extractors that answer bad input with our problem+json, never the framework's text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use serde::de::DeserializeOwned;
use ticket_domain::vocabulary::Role;

use super::problem::{ApiError, FieldError};
use super::{AppState, REQUEST_BODY_BYTES_MAX};
use crate::auth::{self, Caller};

/// A JSON body, parsed strictly (unknown fields are refused), with its raw bytes kept for the
/// idempotency fingerprint.
pub struct ApiJson<T> {
    pub value: T,
    pub raw: Bytes,
    pub method: Method,
    pub path: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        let raw = axum::body::to_bytes(request.into_body(), REQUEST_BODY_BYTES_MAX)
            .await
            .map_err(|_| ApiError::payload_too_large(REQUEST_BODY_BYTES_MAX))?;
        // An empty body means "no fields", for commands that take none (`close`).
        if raw.is_empty() {
            let value = serde_json::from_slice(b"{}").map_err(|e| {
                ApiError::validation(
                    format!("this request needs a JSON body: {e}"),
                    vec![FieldError { field: field_of(&e.to_string()), problem: e.to_string() }],
                )
            })?;
            return Ok(Self { value, raw: Bytes::from_static(b""), method, path });
        }
        let is_json = media_type
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let value = serde_json::from_slice(&raw).map_err(|error| match error.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::malformed_json(format!("{error}")),
            serde_json::error::Category::Data => {
                let message = error.to_string();
                let field = field_of(&message);
                ApiError::validation(
                    format!("the body does not match the request schema: {message}"),
                    vec![FieldError { field, problem: message }],
                )
            }
        })?;
        Ok(Self { value, raw, method, path })
    }
}

/// The field a serde message names ("missing field `x`", "unknown field `y`").
fn field_of(message: &str) -> String {
    message.split('`').nth(1).unwrap_or("body").to_owned()
}

/// The authenticated caller, for every route but mail intake: an `intake` token may only
/// deliver mail.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = authenticate(parts, state).await?;
        if caller.role == Role::Intake {
            return Err(ApiError::forbidden("an 'intake' token may only deliver mail to POST /api/v1/intake/email"));
        }
        Ok(caller)
    }
}

/// A caller who may deliver customer e-mail: an `intake` token or an admin.
pub struct MailDeliverer(pub Caller);

impl FromRequestParts<AppState> for MailDeliverer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = authenticate(parts, state).await?;
        match caller.role {
            Role::Intake | Role::Admin => Ok(Self(caller)),
            other => Err(ApiError::forbidden(format!(
                "mail intake needs an 'intake' (or 'admin') token, not '{}'",
                auth::role_name(other)
            ))),
        }
    }
}

/// Checks the bearer token (cached after the first look-up).
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(token) = header.strip_prefix("Bearer ").map(str::trim) else {
        return Err(ApiError::unauthenticated());
    };
    if let Some(caller) = state.tokens.get(token) {
        return Ok(caller);
    }
    match auth::authenticate(&state.database, token).await {
        Ok(Some(caller)) => {
            state.tokens.put(token, caller.clone());
            Ok(caller)
        }
        Ok(None) => Err(ApiError::unauthenticated()),
        Err(error) => Err(ApiError::from(ticket_app::AppError::Store(error))),
    }
}

/// A caller who may run commands (an agent or an admin). Checked before the body is read, so
/// a reader gets 403 whatever it sent.
pub struct Agent(pub Caller);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        crate::commands::may_command(&caller)?;
        Ok(Self(caller))
    }
}

/// `If-Match: "<version>"` (also `W/"<version>"` or a bare number).
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else { return Ok(Self(None)) };
        let text = value.to_str().map_err(|_| ApiError::invalid_header("If-Match must be ASCII"))?.trim();
        let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        bare.parse::<u64>().map(|v| Self(Some(v))).map_err(|_| {
            ApiError::invalid_header(format!(
                "If-Match must be a ticket version as its ETag gives it, like \"3\"; got {text}"
            ))
        })
    }
}

/// `Idempotency-Key: <1-200 visible ASCII characters>`.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(Self(None)) };
        let text = value.to_str().unwrap_or("").trim();
        let valid = !text.is_empty()
            && text.len() <= crate::idempotency::KEY_CHARS_MAX
            && text.chars().all(|c| c.is_ascii_graphic());
        if !valid {
            return Err(ApiError::invalid_header(
                "Idempotency-Key must be 1-200 visible ASCII characters (a UUID is ideal)",
            ));
        }
        Ok(Self(Some(text.to_owned())))
    }
}
