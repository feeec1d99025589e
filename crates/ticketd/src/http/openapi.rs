//! The OpenAPI 3.1 document: generated from the handlers and types, then completed with the
//! error responses every operation shares. Served at `/api/v1/openapi.json`; the copy in
//! `schemas/openapi.json` must equal it (a test checks), so API changes show in review.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::problem::{FieldError, Problem};
use super::tickets::*;
use super::{Health, ProjectionHealth, Readiness};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ticketd",
        description = "The complaint-handling ticket service: intake, the workflow's commands, tickets and their histories. \
                       Errors are RFC 9457 problem+json documents with a stable `code`.",
        version = "1.0.0"
    ),
    paths(
        create_ticket, get_ticket, get_events, get_sla, get_attachment, super::contact::contact, super::intake::email, acknowledge, investigate, escalate, escalation_answer, resolve, close,
        reopen, assign, prioritise, link_contract, reclassify, out_of_scope, notes, replies, survey_sent, survey_answer,
        super::queues::get_queue, super::stats::summary, super::stats::divisions, super::stats::root_causes, super::stats::sla,
        super::audit::export, super::healthz, super::readyz,
        super::registry::list_contracts, super::registry::put_contract, super::registry::retire_contract,
        super::registry::set_default_contract, super::registry::list_divisions, super::registry::put_division,
        super::registry::history, super::registry::list_staff, super::registry::put_staff,
    ),
    components(schemas(
        Problem, FieldError, TicketView, ReporterView, super::contact::ContactRequest, super::contact::ContactAttachment,
        super::contact::ContactReceipt, super::intake::IntakeResult, ContractBody, SlaClockView, ticket_domain::sla::SlaTarget,
        super::queues::QueueSort, super::stats::SlaReport,
        ticket_projections::sla_clocks::ComplianceRow, ticket_projections::sla_clocks::ComplianceGroup, super::registry::ContractView, super::registry::ContractList,
        super::registry::DivisionView, super::registry::DefaultContractBody, super::registry::RegistryChange,
        ticket_domain::registry::ContractTerms, ticket_domain::registry::DivisionTerms, ticket_domain::registry::SlaTargets, ticket_domain::registry::WorkingHours, PriorityBody,
        ticket_domain::registry::StaffTerms, super::registry::StaffView, ticket_domain::vocabulary::AttachmentRef, EventView, HistoryView, CreateTicket, ReporterInput,
        Health, Readiness, ProjectionHealth, super::Lag, super::queues::QueuePage, super::queues::QueueItem,
    )),
    tags(
        (name = "tickets", description = "Intake, the ticket, its history"),
        (name = "workflow", description = "The workflow's commands: each answers with the ticket after it"),
        (name = "queues", description = "The agents' work lists, from the read models"),
        (name = "statistics", description = "Complaint statistics for quality managers (JSON or CSV)"),
        (name = "audit", description = "Exports for record keeping"),
        (name = "registry", description = "Contracts (SLA targets, reporters), divisions and the staff directory: read by staff, changed by admins"),
        (name = "operations", description = "Health")
    )
)]
struct ApiDoc;

/// Which error statuses an operation can answer, with what each means.
fn error_statuses(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    if !path.starts_with("/api/v1/") {
        return vec![];
    }
    if path == "/api/v1/contact" {
        // Public: no token, no roles, no workflow.
        return vec![
            ("400", "The body is not JSON (`malformed_json`)"),
            ("413", "The body is too large (`payload_too_large`)"),
            ("415", "The body is not `application/json` (`unsupported_media_type`)"),
            (
                "422",
                "A field is missing or invalid, or the attachment is not allowed (`validation_failed`, with `errors`)",
            ),
            ("500", "The service failed; details are logged (`internal_error`)"),
            ("503", "The database did not answer (`store_unavailable`)"),
        ];
    }
    if path == "/api/v1/intake/email" {
        // Its own statuses are on the operation; only the shared ones are added.
        return vec![
            ("401", "No or no live API token (`unauthenticated`)"),
            ("500", "The service failed; details are logged (`internal_error`)"),
            ("503", "The database did not answer (`store_unavailable`)"),
        ];
    }
    let mut statuses = vec![
        ("401", "No or no live API token (`unauthenticated`)"),
        ("500", "The service failed; details are logged (`internal_error`)"),
        ("503", "The database did not answer (`store_unavailable`)"),
    ];
    if path.contains("{id}") {
        statuses.push(("404", "No such ticket (`not_found`)"));
    }
    if path.contains("{queue}") {
        statuses.push(("404", "No such queue (`not_found`)"));
    }
    let registry_path = ["/api/v1/contracts", "/api/v1/divisions", "/api/v1/default-contract", "/api/v1/staff"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    if registry_path && (method == "put" || method == "post") {
        statuses.extend([
            ("400", "The body is not JSON (`malformed_json`)"),
            ("403", "Only admins change the registry (`forbidden`)"),
            (
                "409",
                "Nothing would change (`nothing_to_change`), or the change conflicts with the registry: a domain or \
                 address another contract has, the default contract retired, a retired contract made default \
                 (`registry_conflict`)",
            ),
            ("413", "The body is too large (`payload_too_large`)"),
            ("415", "The body is not `application/json` (`unsupported_media_type`)"),
            ("422", "The body does not describe valid terms (`validation_failed`, with `errors`)"),
        ]);
        if path == "/api/v1/default-contract" {
            statuses.push(("404", "No such contract (`not_found`)"));
        }
        return statuses;
    }
    if method == "post" {
        statuses.extend([
            ("400", "The body is not JSON (`malformed_json`) or a header is invalid (`invalid_header`)"),
            ("403", "The caller's role may not run commands (`forbidden`)"),
            (
                "409",
                "The workflow does not allow this now (`invalid_transition`, with `current_status` and `allowed_actions`), \
                 nothing would change (`nothing_to_change`), the ticket is busy (`contended`), or the first request with \
                 this Idempotency-Key is still running (`request_in_progress`, with `Retry-After`)",
            ),
            ("413", "The body is too large (`payload_too_large`)"),
            ("415", "The body is not `application/json` (`unsupported_media_type`)"),
            (
                "422",
                "The body does not describe a valid request (`validation_failed`, with `errors`), or the Idempotency-Key \
                 was used for another request (`idempotency_key_reused`)",
            ),
        ]);
        if path.contains("{id}") {
            statuses.push(("412", "If-Match names an older version (`version_conflict`, with `current_version`)"));
        }
    }
    statuses
}

fn build() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document is JSON");
    let problem = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
                for (status, description) in error_statuses(method, path) {
                    responses
                        .insert(status.to_owned(), json!({"description": description, "content": problem.clone()}));
                }
                if !path.starts_with("/api/v1/") {
                    operation["security"] = json!([]);
                }
            }
        }
    }
    // Raw bytes in and out: a binary string, whatever utoipa makes of `Vec<u8>`.
    let binary = json!({"type": "string", "format": "binary"});
    document["paths"]["/api/v1/intake/email"]["post"]["requestBody"]["content"]["message/rfc822"]["schema"] =
        binary.clone();
    document["paths"]["/api/v1/tickets/{id}/attachments/{sha256}"]["get"]["responses"]["200"]["content"]["application/octet-stream"]
        ["schema"] = binary;
    document["paths"]["/api/v1/openapi.json"] = json!({
        "get": {
            "tags": ["operations"],
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }
    });
    document["components"]["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer", "description": "An API token from `ticketd token create`"}});
    document["security"] = json!([{"bearer": []}]);
    document
}

/// The document as served, pretty-printed with a final newline (as checked in).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::to_string_pretty(&build()).expect("JSON") + "\n")
}

pub async fn serve() -> Response {
    let mut response = document().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
