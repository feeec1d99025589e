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
        create_ticket, get_ticket, get_events, get_sla, complaint_record, get_attachment, super::contact::contact, super::intake::email, acknowledge, investigate, escalate, escalation_answer, resolve, close,
        reopen, assign, prioritise, link_contract, reclassify, out_of_scope, notes, replies, survey_sent, survey_answer,
        super::queues::get_queue, super::stats::summary, super::stats::divisions, super::stats::root_causes, super::stats::sla,
        super::audit::export, super::audit::checkpoint, super::audit::sign_checkpoint, super::audit::proof,
        super::audit::consistency, super::subjects::export, super::subjects::erase, super::healthz, super::readyz,
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
        ticket_ledger::bundle::ProofBundle, ticket_ledger::bundle::ProvenEvent, ticket_ledger::bundle::ConsistencyBundle,
        ticket_ledger::leaf::LeafEvent, super::subjects::SubjectExport, super::subjects::SubjectTicket,
        super::subjects::SubjectMessage, super::subjects::SubjectStep, super::subjects::SubjectMail, super::subjects::ErasureRequest, super::subjects::ErasureReport, super::subjects::ExportFormat, crate::privacy::TicketOutcome, Health, Readiness, ProjectionHealth, super::LeasesHealth, super::LeaseHealth, super::Lag, super::queues::QueuePage, super::queues::QueueItem,
    )),
    tags(
        (name = "tickets", description = "Intake, the ticket, its history"),
        (name = "workflow", description = "The workflow's commands: each answers with the ticket after it"),
        (name = "queues", description = "The agents' work lists, from the read models"),
        (name = "statistics", description = "Complaint statistics for quality managers (JSON or CSV)"),
        (name = "audit", description = "Exports for record keeping, and the tamper-evident ledger: signed checkpoints and proofs"),
        (name = "registry", description = "Contracts (SLA targets, reporters), divisions and the staff directory: read by staff, changed by admins"),
        (name = "operations", description = "Health")
    )
)]
struct ApiDoc;

/// Stands for the 413 answer; `build` says the limit in bytes.
const BODY_TOO_LARGE: &str = "The body is too large (`payload_too_large`)";

/// Which error statuses an operation can answer, with what each means.
fn error_statuses(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    if !path.starts_with("/api/v1/") {
        return vec![];
    }
    if path == "/api/v1/contact" {
        // Public: no token, no roles, no workflow.
        return vec![
            ("400", "The body is not JSON (`malformed_json`)"),
            ("413", BODY_TOO_LARGE),
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
            ("413", BODY_TOO_LARGE),
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
            ("413", BODY_TOO_LARGE),
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

/// Standard, padded base64 of at least one byte (with zero trailing bits, as the decoder
/// wants), white space around.
fn base64_pattern() -> String {
    use ticket_domain::vocabulary::SPACE;
    let b = "[A-Za-z0-9+/]";
    format!("^[{SPACE}]*(?:{b}{{4}})*(?:{b}{{4}}|{b}[AQgw]==|{b}{{2}}[AEIMQUYcgkosw048]=)[{SPACE}]*$")
}

/// What the server checks of one value, stated in the schema.
enum Rule {
    /// `bounded_text` with this many characters at most.
    Text(usize),
    /// `EmailAddress::parse`.
    Email,
    Integer {
        minimum: i64,
        maximum: i64,
    },
    Pattern(fn() -> String, Option<usize>),
    /// One of these strings.
    OneOf(fn() -> Vec<Value>),
}

/// Every constrained property of a request schema: (component, property, rule). The numbers
/// are the constants the parsers use; `tests/api` sends each limit and one beyond it.
fn rules() -> Vec<(&'static str, &'static str, Rule)> {
    use Rule::*;
    use ticket_domain::registry::{self, MINUTES_MAX, NAME_CHARS_MAX, WARN_PERCENT_MAX, WARN_PERCENT_MIN};
    use ticket_domain::vocabulary::*;
    let minutes = || Integer { minimum: 1, maximum: i64::from(MINUTES_MAX) };
    let hours = || Pattern(|| registry::HOURS_PATTERN.to_owned(), None);
    vec![
        ("CreateTicket", "subject", Text(Subject::CHARS_MAX)),
        ("CreateTicket", "message", Text(MessageBody::CHARS_MAX)),
        ("CreateTicket", "contract_id", Text(ContractId::CHARS_MAX)),
        ("ReporterInput", "name", Text(PersonName::CHARS_MAX)),
        ("ReporterInput", "email", Email),
        ("ReporterInput", "phone", Text(PhoneNumber::CHARS_MAX)),
        ("ContractBody", "contract_id", Text(ContractId::CHARS_MAX)),
        ("DefaultContractBody", "contract_id", Text(ContractId::CHARS_MAX)),
        ("AcknowledgeBody", "message_id", Text(MessageId::CHARS_MAX)),
        ("EscalateBody", "division", Text(DivisionId::CHARS_MAX)),
        ("EscalateBody", "reason", Text(Reason::CHARS_MAX)),
        ("EscalationAnswerBody", "outcome", Text(Reason::CHARS_MAX)),
        ("ResolveBody", "resolution", Text(MessageBody::CHARS_MAX)),
        ("ResolveBody", "root_cause", Text(RootCause::CHARS_MAX)),
        ("ResolveBody", "rejection_reasons", Text(MessageBody::CHARS_MAX)),
        ("ReasonBody", "reason", Text(Reason::CHARS_MAX)),
        ("ErasureRequest", "reason", Text(Reason::CHARS_MAX)),
        ("ErasureRequest", "request_reference", Text(Reason::CHARS_MAX)),
        ("ErasureRequest", "email", Email),
        ("ErasureRequest", "phone", Text(PhoneNumber::CHARS_MAX)),
        ("AssignBody", "assignee", Text(StaffName::CHARS_MAX)),
        ("PriorityBody", "reason", Text(Reason::CHARS_MAX)),
        ("ReclassifyBody", "reason", Text(Reason::CHARS_MAX)),
        ("MessageBodyInput", "body", Text(MessageBody::CHARS_MAX)),
        (
            "SurveyAnswerBody",
            "score",
            Integer { minimum: i64::from(SurveyScore::MIN), maximum: i64::from(SurveyScore::MAX) },
        ),
        ("SurveyAnswerBody", "comment", Text(MessageBody::CHARS_MAX)),
        ("ContactRequest", "name", Text(PersonName::CHARS_MAX)),
        ("ContactRequest", "email", Email),
        ("ContactRequest", "subject", Text(Subject::CHARS_MAX)),
        ("ContactRequest", "message", Text(MessageBody::CHARS_MAX)),
        ("ContactAttachment", "content_base64", Pattern(base64_pattern, None)),
        ("ContractTerms", "customer", Text(NAME_CHARS_MAX)),
        (
            "ContractTerms",
            "email_domains",
            Pattern(registry::mail_domain_pattern, Some(registry::MAIL_DOMAIN_BYTES_MAX)),
        ),
        ("ContractTerms", "email_addresses", Email),
        ("ContractTerms", "calendar", OneOf(|| registry::CALENDARS.iter().map(|c| json!(c)).collect())),
        ("ContractTerms", "time_zone", OneOf(|| registry::time_zone_names().map(|z| json!(z)).collect())),
        (
            "ContractTerms",
            "warn_percent",
            Integer { minimum: i64::from(WARN_PERCENT_MIN), maximum: i64::from(WARN_PERCENT_MAX) },
        ),
        ("SlaTargets", "first_contact_minutes", minutes()),
        ("SlaTargets", "resolution_minutes", minutes()),
        ("DivisionTerms", "name", Text(NAME_CHARS_MAX)),
        ("DivisionTerms", "notification_email", Email),
        ("DivisionTerms", "answer_minutes", minutes()),
        ("StaffTerms", "email", Email),
        ("StaffTerms", "display_name", Text(NAME_CHARS_MAX)),
        ("WorkingHours", "mon", hours()),
        ("WorkingHours", "tue", hours()),
        ("WorkingHours", "wed", hours()),
        ("WorkingHours", "thu", hours()),
        ("WorkingHours", "fri", hours()),
        ("WorkingHours", "sat", hours()),
        ("WorkingHours", "sun", hours()),
    ]
}

/// States `rule` on a property's schema (on the items of an array).
fn constrain(schema: &mut Value, rule: &Rule) {
    if schema.get("type").is_some_and(|t| t == "array") {
        return constrain(&mut schema["items"], rule);
    }
    let nullable = schema.get("type").is_some_and(|t| t.as_array().is_some_and(|t| t.contains(&json!("null"))));
    match rule {
        Rule::Text(chars_max) => {
            schema["pattern"] = json!(ticket_domain::vocabulary::text_pattern());
            schema["minLength"] = json!(1);
            schema["maxLength"] = json!(chars_max);
        }
        Rule::Email => {
            schema["format"] = json!("email");
            schema["maxLength"] = json!(ticket_domain::vocabulary::EmailAddress::BYTES_MAX);
        }
        Rule::Integer { minimum, maximum } => {
            schema["minimum"] = json!(minimum);
            schema["maximum"] = json!(maximum);
        }
        Rule::Pattern(pattern, max_length) => {
            schema["pattern"] = json!(pattern());
            if let Some(max_length) = max_length {
                schema["maxLength"] = json!(max_length);
            }
        }
        Rule::OneOf(values) => {
            let mut values = values();
            if nullable {
                values.push(Value::Null);
            }
            schema["enum"] = Value::Array(values);
        }
    }
}

/// Completes the request schemas with what the server checks beyond types.
fn state_constraints(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    for (component, property, rule) in rules() {
        let schema = &mut schemas[component]["properties"][property];
        // A nullable reference (`oneOf: [$ref, null]`) has no string schema of its own.
        assert!(schema.is_object(), "{component}.{property} is not in the document");
        constrain(schema, &rule);
    }
    // `property` is given, and matches `schema`.
    let given = |property: &str, schema: Value| {
        let properties: serde_json::Map<String, Value> = [(property.to_owned(), schema)].into_iter().collect();
        json!({"required": [property], "properties": properties})
    };
    // Reclassify changes something: a category, a service area, or both.
    schemas["ReclassifyBody"]["anyOf"] =
        json!(["category", "service_area"].map(|p| given(p, json!({"not": {"type": "null"}}))));
    // A reporter is reached by e-mail, by phone, or both.
    schemas["ReporterInput"]["anyOf"] = json!(["email", "phone"].map(|p| given(p, json!({"type": "string"}))));
    // Working hours open on at least one weekday.
    schemas["WorkingHours"]["anyOf"] =
        json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(|p| given(p, json!({"type": "string"}))));
    // Rejection reasons belong to a rejection, whole or in part, which needs them.
    schemas["ResolveBody"]["if"] = json!({"properties": {"complaint_outcome": {"enum": ["partly_upheld", "rejected"]}}, "required": ["complaint_outcome"]});
    schemas["ResolveBody"]["then"] =
        json!({"required": ["rejection_reasons"], "properties": {"rejection_reasons": {"type": "string"}}});
    schemas["ResolveBody"]["else"] = json!({"properties": {"rejection_reasons": {"type": "null"}}});
    let limit = super::REQUEST_BODY_BYTES_MAX;
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            for parameter in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                let instant = json!({"type": "string", "format": "date-time"});
                let schema = match parameter["name"].as_str() {
                    // RFC 3339 instants (`DateTime::parse_from_rfc3339`).
                    Some("as_of") => instant,
                    Some("from" | "to") if path == "/api/v1/audit/export" => instant,
                    Some("If-Match") => json!({"type": "string", "pattern": "^(W/)?\"?[0-9]{1,19}\"?$"}),
                    Some("Idempotency-Key") => json!({
                        "type": "string",
                        "pattern": format!("^[!-~]{{1,{}}}$", crate::idempotency::KEY_CHARS_MAX),
                    }),
                    Some("limit") => {
                        json!({"type": "integer", "minimum": 1, "maximum": ticket_projections::queues::QUEUE_PAGE_MAX})
                    }
                    _ => continue,
                };
                parameter["schema"] = schema;
            }
            let json_body =
                operation.get("requestBody").is_some_and(|body| body["content"].get("application/json").is_some());
            if json_body {
                operation["requestBody"]["description"] = json!(format!(
                    "At most {limit} bytes (413 `payload_too_large` beyond); text limits count characters."
                ));
            }
        }
    }
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
                    let description = if description == BODY_TOO_LARGE {
                        format!("The body is larger than {} bytes (`payload_too_large`)", super::REQUEST_BODY_BYTES_MAX)
                    } else {
                        description.to_owned()
                    };
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
    state_constraints(&mut document);
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
