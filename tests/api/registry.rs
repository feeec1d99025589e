//! Contracts and divisions: managed by admins through the API and the CLI, audited as events,
//! and deciding which contract a new ticket belongs to.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> crate::harness::Answer {
    app.request(Method::PUT, path, Some(token), &[], Some(body)).await
}

async fn create_for(app: &TestApp, email: &str, contract: Option<&str>) -> crate::harness::Answer {
    let mut body = json!({
        "channel": "phone",
        "reporter": {"name": "Próba Péter", "email": email},
        "subject": "Szerződés szerinti ügy",
        "message": "Teszt.",
    });
    if let Some(contract) = contract {
        body["contract_id"] = json!(contract);
    }
    app.request(Method::POST, "/api/v1/tickets", Some(&app.agent), &[], Some(body)).await
}

pub async fn contracts_decide_a_tickets_contract_and_every_change_is_audited(app: TestApp) {
    let acme = json!({
        "customer": "ACME Kft.",
        "email_domains": ["acme.hu"],
        "sla": {"first_contact_minutes": 480, "resolution_minutes": 2400},
        "sla_by_category": {"complaint": {"first_contact_minutes": 120, "resolution_minutes": 960}},
    });
    // Only admins change the registry.
    assert_eq!(put(&app, "/api/v1/contracts/acme", &app.agent, acme.clone()).await.status, StatusCode::FORBIDDEN);
    let saved = put(&app, "/api/v1/contracts/acme", &app.admin, acme.clone()).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["terms"]["calendar"], "hu", "the default calendar");
    assert_eq!(saved.body["terms"]["sla_by_category"]["complaint"]["first_contact_minutes"], 120);
    let again = put(&app, "/api/v1/contracts/acme", &app.admin, acme.clone()).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "nothing_to_change"));
    let general = put(&app, "/api/v1/contracts/general", &app.admin, json!({"customer": "Everyone else"})).await;
    assert_eq!(general.status, StatusCode::OK, "{}", general.body);
    let answer = app
        .request(
            Method::PUT,
            "/api/v1/default-contract",
            Some(&app.admin),
            &[],
            Some(json!({"contract_id": "general"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // Bad terms and clashes are refused, with why.
    let bad = put(&app, "/api/v1/contracts/x", &app.admin, json!({"customer": "X", "email_domains": ["acme"]})).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{}", bad.body);
    let clash =
        put(&app, "/api/v1/contracts/x", &app.admin, json!({"customer": "X", "email_domains": ["ACME.hu"]})).await;
    assert_eq!((clash.status, clash.code()), (StatusCode::CONFLICT, "registry_conflict"), "{}", clash.body);
    let unknown_field = put(&app, "/api/v1/contracts/x", &app.admin, json!({"customer": "X", "sla_minutes": 5})).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Intake links the contract from the reporter's address, else the default.
    let by_domain = create_for(&app, "anna@acme.hu", None).await;
    assert_eq!(by_domain.status, StatusCode::CREATED, "{}", by_domain.body);
    assert_eq!(by_domain.body["contract_id"], "acme");
    let by_default = create_for(&app, "someone@elsewhere.hu", None).await;
    assert_eq!(by_default.body["contract_id"], "general");
    let named = create_for(&app, "someone@elsewhere.hu", Some("acme")).await;
    assert_eq!(named.body["contract_id"], "acme", "an agent may name the contract at intake");
    let unknown = create_for(&app, "someone@elsewhere.hu", Some("no-such-contract")).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.body);

    // The contract's targets give the ticket its SLA clocks (in business hours); the queue shows
    // the earliest due time and sorts by it.
    let acme_ticket = by_domain.body["id"].as_str().unwrap().to_owned();
    let mut clocks = Value::Null;
    for _ in 0..200 {
        clocks = app.get(&format!("/api/v1/tickets/{acme_ticket}/sla"), &app.agent).await.body;
        if clocks.as_array().is_some_and(|c| c.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let targets: Vec<&str> = clocks.as_array().unwrap().iter().map(|c| c["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["first_contact", "resolution"], "{clocks}");
    assert!(clocks[0]["due_at"].is_string() && clocks[0]["met_at"].is_null() && clocks[0]["warned"] == false);
    // The queue is its own read model and follows the log within moments: wait for all three.
    let items = crate::queue_until(&app, "/api/v1/queues/all-open?sort=due", |items| items.len() == 3).await;
    let first = &items[0];
    assert_eq!(first["id"].as_str(), Some(acme_ticket.as_str()), "the ticket with a due time comes first: {items:?}");
    assert_eq!(first["due_at"], clocks[0]["due_at"]);
    assert!(first["business_seconds_left"].as_i64().is_some_and(|s| s <= 8 * 3600));

    // An agent relinks a ticket; the history says from what.
    let id = by_default.body["id"].as_str().unwrap().to_owned();
    let relinked = app.act(&id, "contract", json!({"contract_id": "acme"})).await;
    assert_eq!(relinked.status, StatusCode::OK, "{}", relinked.body);
    assert_eq!(relinked.body["contract_id"], "acme");
    let events = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await.body;
    let linked =
        events["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "ContractLinked").cloned().unwrap();
    assert_eq!(linked["payload"], json!({"contract_id": "acme", "previous_contract_id": "general"}));
    assert_eq!(app.act(&id, "contract", json!({"contract_id": "acme"})).await.code(), "nothing_to_change");
    assert_eq!(app.act(&id, "contract", json!({"contract_id": "gone"})).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A retired contract keeps its tickets and matches no new reporter; the default cannot retire.
    let refused = app.request(Method::POST, "/api/v1/contracts/general/retire", Some(&app.admin), &[], None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "registry_conflict"));
    let retired = app.request(Method::POST, "/api/v1/contracts/acme/retire", Some(&app.admin), &[], None).await;
    assert_eq!((retired.status, &retired.body["retired"]), (StatusCode::OK, &json!(true)), "{}", retired.body);
    assert_eq!(create_for(&app, "bela@acme.hu", None).await.body["contract_id"], "general");
    let still = app.get(&format!("/api/v1/tickets/{}", by_domain.body["id"].as_str().unwrap()), &app.agent).await;
    assert_eq!(still.body["contract_id"], "acme");

    // Divisions.
    let division = json!({"name": "Jogi osztály", "notification_email": "jog@tickets.example", "answer_minutes": 960});
    let saved = put(&app, "/api/v1/divisions/legal", &app.admin, division).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let divisions = app.get("/api/v1/divisions", &app.quality_manager).await;
    assert_eq!(divisions.body[0]["id"], "legal");
    let bad_mail =
        put(&app, "/api/v1/divisions/it", &app.admin, json!({"name": "IT", "notification_email": "nope"})).await;
    assert_eq!(bad_mail.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The CLI sees and changes the same registry; every change is in the audited history.
    let output = app.cli(&["division", "put", "it", "--name", "IT üzemeltetés", "--email", "it@tickets.example"]);
    assert!(output.starts_with("registry at version"), "{output}");
    let listed = app.cli(&["contract", "list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("\"retired\":true"), "{listed}");
    assert_eq!(app.get("/api/v1/registry/history", &app.agent).await.status, StatusCode::FORBIDDEN);
    let history = app.get("/api/v1/registry/history", &app.auditor).await.body;
    let types: Vec<&str> = history.as_array().unwrap().iter().map(|c| c["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ContractSaved", "ContractSaved", "DefaultContractSet", "ContractRetired", "DivisionSaved", "DivisionSaved"]
    );
    assert_eq!(history[0]["actor"], json!({"kind": "staff", "name": "root-admin", "role": "admin"}));
    assert_eq!(history[5]["actor"]["name"].as_str().map(|n| n.starts_with("cli:")), Some(true));
    assert_eq!(app.get("/api/v1/contracts", &app.quality_manager).await.body["default_contract"], "general");
}
