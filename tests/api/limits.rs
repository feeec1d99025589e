//! The OpenAPI document states every rule the server checks of a value: for each constrained
//! field of each request body, the schema's own limit is read from the served document, a value
//! at it is accepted and one beyond it is refused with 422 (`validation_failed`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app_with};

/// A request whose body has a constrained field: where it goes, a valid body, the field (a JSON
/// pointer into the body) and where the document describes it (component, property).
struct Row {
    method: Method,
    path: &'static str,
    body: Value,
    field: &'static str,
    component: &'static str,
    property: &'static str,
}

fn rows() -> Vec<Row> {
    let reporter = json!({"name": "Kovács Anna", "email": "anna@example.hu", "phone": "+36 30 123 4567"});
    let ticket = json!({"channel": "phone", "reporter": reporter, "subject": "Belépés", "message": "Nem megy.", "contract_id": "limits"});
    let contact =
        json!({"name": "Kovács Anna", "email": "anna@example.hu", "subject": "Belépés", "message": "Nem megy."});
    // Ticket 999999 does not exist: a valid body is answered 404, an invalid one 422 (bodies
    // are read first).
    let terms = json!({"customer": "Limits Kft.", "sla": {"first_contact_minutes": 60, "resolution_minutes": 600}, "warn_percent": 80});
    let row = |method: Method, path: &'static str, body: &Value, field, component, property| Row {
        method,
        path,
        body: body.clone(),
        field,
        component,
        property,
    };
    let post = Method::POST;
    let put = Method::PUT;
    vec![
        row(post.clone(), "/api/v1/tickets", &ticket, "/subject", "CreateTicket", "subject"),
        row(post.clone(), "/api/v1/tickets", &ticket, "/message", "CreateTicket", "message"),
        row(post.clone(), "/api/v1/tickets", &ticket, "/reporter/name", "ReporterInput", "name"),
        row(post.clone(), "/api/v1/tickets", &ticket, "/reporter/email", "ReporterInput", "email"),
        row(post.clone(), "/api/v1/tickets", &ticket, "/reporter/phone", "ReporterInput", "phone"),
        row(
            post.clone(),
            "/api/v1/tickets/999999/escalate",
            &json!({"division": "it", "reason": "x"}),
            "/reason",
            "EscalateBody",
            "reason",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/escalate",
            &json!({"division": "it", "reason": "x"}),
            "/division",
            "EscalateBody",
            "division",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/escalation-answer",
            &json!({"outcome": "x"}),
            "/outcome",
            "EscalationAnswerBody",
            "outcome",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/resolve",
            &json!({"resolution": "x", "root_cause": "x", "within_own_authority": true}),
            "/root_cause",
            "ResolveBody",
            "root_cause",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/resolve",
            &json!({"resolution": "x", "root_cause": "x", "within_own_authority": true}),
            "/resolution",
            "ResolveBody",
            "resolution",
        ),
        row(post.clone(), "/api/v1/tickets/999999/reopen", &json!({"reason": "x"}), "/reason", "ReasonBody", "reason"),
        row(
            post.clone(),
            "/api/v1/tickets/999999/assign",
            &json!({"assignee": "x"}),
            "/assignee",
            "AssignBody",
            "assignee",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/priority",
            &json!({"priority": "high", "reason": "x"}),
            "/reason",
            "PriorityBody",
            "reason",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/reclassify",
            &json!({"category": "complaint", "reason": "x"}),
            "/reason",
            "ReclassifyBody",
            "reason",
        ),
        row(post.clone(), "/api/v1/tickets/999999/notes", &json!({"body": "x"}), "/body", "MessageBodyInput", "body"),
        row(
            post.clone(),
            "/api/v1/tickets/999999/acknowledge",
            &json!({"message_id": "x"}),
            "/message_id",
            "AcknowledgeBody",
            "message_id",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/survey-answer",
            &json!({"score": 3}),
            "/score",
            "SurveyAnswerBody",
            "score",
        ),
        row(
            post.clone(),
            "/api/v1/tickets/999999/survey-answer",
            &json!({"score": 3, "comment": "x"}),
            "/comment",
            "SurveyAnswerBody",
            "comment",
        ),
        row(post.clone(), "/api/v1/contact", &contact, "/name", "ContactRequest", "name"),
        row(post.clone(), "/api/v1/contact", &contact, "/email", "ContactRequest", "email"),
        row(post.clone(), "/api/v1/contact", &contact, "/subject", "ContactRequest", "subject"),
        row(post.clone(), "/api/v1/contact", &contact, "/message", "ContactRequest", "message"),
        row(put.clone(), "/api/v1/contracts/limits", &terms, "/customer", "ContractTerms", "customer"),
        row(put.clone(), "/api/v1/contracts/limits", &terms, "/warn_percent", "ContractTerms", "warn_percent"),
        row(
            put.clone(),
            "/api/v1/contracts/limits",
            &terms,
            "/sla/first_contact_minutes",
            "SlaTargets",
            "first_contact_minutes",
        ),
        row(
            put.clone(),
            "/api/v1/contracts/limits",
            &terms,
            "/sla/resolution_minutes",
            "SlaTargets",
            "resolution_minutes",
        ),
        row(
            put.clone(),
            "/api/v1/divisions/limits",
            &json!({"name": "Limits", "notification_email": "it@example.hu", "answer_minutes": 60}),
            "/name",
            "DivisionTerms",
            "name",
        ),
        row(
            put.clone(),
            "/api/v1/divisions/limits",
            &json!({"name": "Limits", "notification_email": "it@example.hu", "answer_minutes": 60}),
            "/notification_email",
            "DivisionTerms",
            "notification_email",
        ),
        row(
            put.clone(),
            "/api/v1/divisions/limits",
            &json!({"name": "Limits", "notification_email": "it@example.hu", "answer_minutes": 60}),
            "/answer_minutes",
            "DivisionTerms",
            "answer_minutes",
        ),
        row(put, "/api/v1/staff/limits", &json!({"email": "limits@example.hu"}), "/email", "StaffTerms", "email"),
    ]
}

/// An address of exactly `length` bytes.
fn address(length: usize) -> String {
    let domain_length = length - 65;
    let mut domain = String::new();
    while domain_length - domain.len() > 66 {
        domain.push_str(&"d".repeat(62));
        domain.push('.');
    }
    domain.push_str(&"e".repeat(domain_length - domain.len() - 3));
    domain.push_str(".hu");
    format!("{}@{domain}", "a".repeat(64))
}

/// The values at the schema's limits (accepted) and just beyond them (refused).
fn probes(schema: &Value, what: &str) -> (Vec<Value>, Vec<Value>) {
    if let Some(pattern) = schema["pattern"].as_str() {
        assert_eq!(pattern, ticket_domain::vocabulary::text_pattern(), "{what}: the pattern of free text");
        let max = schema["maxLength"].as_u64().unwrap_or_else(|| panic!("{what} states no maxLength")) as usize;
        assert_eq!(schema["minLength"], 1, "{what}");
        // The limit counts characters, not bytes; white space around is trimmed.
        let at = vec![json!("é".repeat(max)), json!(format!("  x{}\n", "é".repeat(max - 4)))];
        // Counted as sent: white space around counts too.
        let beyond = vec![
            json!("é".repeat(max + 1)),
            json!(format!("  {}", "é".repeat(max - 1))),
            json!(" \t "),
            json!("a\u{1}b"),
        ];
        return (at, beyond);
    }
    if schema["format"] == "email" {
        let max = schema["maxLength"].as_u64().unwrap_or_else(|| panic!("{what} states no maxLength")) as usize;
        return (vec![json!(address(max))], vec![json!(address(max + 1)), json!("anna@"), json!("Anna <a@b.hu>")]);
    }
    let minimum = schema["minimum"].as_i64().unwrap_or_else(|| panic!("{what} states no minimum"));
    let maximum = schema["maximum"].as_i64().unwrap_or_else(|| panic!("{what} states no maximum"));
    (vec![json!(minimum), json!(maximum)], vec![json!(minimum - 1), json!(maximum + 1)])
}

pub async fn the_document_states_every_limit_the_server_checks(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_CONTACT_PER_HOUR", "1000")]).await else { return };
    let document = app.get("/api/v1/openapi.json", &app.admin).await.body;
    let contract = json!({"customer": "Limits Kft."});
    let answer = app.request(Method::PUT, "/api/v1/contracts/limits", Some(&app.admin), &[], Some(contract)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for row in rows() {
        let what = format!("{}.{} ({} {})", row.component, row.property, row.method, row.path);
        let schema = &document["components"]["schemas"][row.component]["properties"][row.property];
        assert!(schema.is_object(), "{what} is not in the document");
        let (at, beyond) = probes(schema, &what);
        for (value, accepted) in at.into_iter().map(|v| (v, true)).chain(beyond.into_iter().map(|v| (v, false))) {
            let mut body = row.body.clone();
            *body.pointer_mut(row.field).unwrap_or_else(|| panic!("{what}: no {} in the body", row.field)) =
                value.clone();
            let answer = send(&app, &row, body).await;
            let shown: String = value.to_string().chars().take(60).collect();
            if accepted {
                assert!(
                    [StatusCode::OK, StatusCode::CREATED, StatusCode::NOT_FOUND, StatusCode::CONFLICT]
                        .contains(&answer.status),
                    "{what}: {shown} is within the document's limits but was answered {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {shown} was not refused");
                assert_eq!(answer.body["code"], "validation_failed", "{what}");
            }
        }
    }
    // Every JSON body's size limit is the one a 413 answers.
    let limit = document["paths"]["/api/v1/tickets"]["post"]["requestBody"]["description"].as_str().unwrap_or("");
    let bytes = 256 * 1024;
    assert!(limit.contains(&bytes.to_string()), "the request body's description states its limit: {limit}");
    let big = json!({"body": "x".repeat(bytes)});
    let answer = app.act("999999", "notes", big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let documented = &document["paths"]["/api/v1/tickets/{id}/notes"]["post"]["responses"]["413"]["description"];
    assert!(documented.as_str().is_some_and(|d| d.contains(&bytes.to_string())), "{documented}");
}

async fn send(app: &TestApp, row: &Row, body: Value) -> crate::harness::Answer {
    let token = if row.path.starts_with("/api/v1/contact") {
        None
    } else if row.method == Method::PUT {
        Some(app.admin.as_str())
    } else {
        Some(app.agent.as_str())
    };
    app.request(row.method.clone(), row.path, token, &[], Some(body)).await
}
