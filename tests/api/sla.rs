//! SLA clocks through the running service, with its clock moved by the test (`--clock-file`,
//! never a real wait for business hours): a complaint received before Easter 2026 under a
//! contract with an 8-business-hour first-contact target. Checks the due times, the warning and
//! breach events, the breach mail to the agents and the SLA statistics.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Budapest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app_with};
use crate::mail::wait_for_mails;

fn budapest(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Budapest.with_ymd_and_hms(2026, month, day, hour, minute, 0).single().unwrap().with_timezone(&Utc)
}

fn set_clock(app: &TestApp, now: DateTime<Utc>) {
    std::fs::write(app.dir().join("now"), now.to_rfc3339()).unwrap();
}

async fn sla_events(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let events = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await.body;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"].as_str().is_some_and(|t| t.starts_with("Sla")))
        .map(|e| (e["event_type"].as_str().unwrap().to_owned(), e["payload"]["target"].as_str().unwrap().to_owned()))
        .collect()
}

async fn until_sla_events(app: &TestApp, id: &str, count: usize) -> Vec<(String, String)> {
    for _ in 0..300 {
        let events = sla_events(app, id).await;
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} SLA events, have {:?}", sla_events(app, id).await);
}

pub async fn sla_clocks_warn_breach_notify_and_count_across_easter(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("TICKETD_MAIL", "files"),
            ("TICKETD_MAIL_AGENTS", "Agents <agents@tickets.example>"),
            ("TICKETD_CLOCK_FILE", "{dir}/now"),
            ("TICKETD_SLA_CHECK_SECONDS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let terms = json!({
        "customer": "ACME Kft.", "email_domains": ["acme.hu"],
        "sla": {"first_contact_minutes": 480, "resolution_minutes": 2400},
    });
    let saved = app.request(Method::PUT, "/api/v1/contracts/acme", Some(&app.admin), &[], Some(terms)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);

    // Thursday 2 April 2026, 15:00 in Budapest: a complaint from an ACME address.
    set_clock(&app, budapest(4, 2, 15, 0));
    let created = app
        .create_ticket_with(json!({
            "channel": "phone", "category": "complaint",
            "reporter": {"name": "Kiss Anna", "email": "anna@acme.hu"},
            "subject": "Kétszer számláztak", "message": "A márciusi számla hibás.",
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["contract_id"], "acme");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let number = created.body["number"].as_u64().unwrap();
    // Kata takes it; the staff directory has her address, so breaches reach her too.
    let kata = json!({"email": "kata@tickets.example"});
    let saved = app.request(Method::PUT, "/api/v1/staff/kata", Some(&app.admin), &[], Some(kata)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(app.act(&id, "assign", json!({"assignee": "kata"})).await.status, StatusCode::OK);

    // Due times skip Good Friday, the weekend and Easter Monday.
    let mut clocks = Value::Null;
    for _ in 0..200 {
        clocks = app.get(&format!("/api/v1/tickets/{id}/sla"), &app.agent).await.body;
        if clocks.as_array().is_some_and(|c| c.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let due = |target: &str| -> DateTime<Utc> {
        let clock = clocks.as_array().unwrap().iter().find(|c| c["target"] == target).unwrap();
        clock["due_at"].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(due("first_contact"), budapest(4, 7, 15, 0), "1 h Thursday + 7 h Tuesday");
    assert_eq!(due("resolution"), budapest(4, 13, 15, 0), "40 business hours: 1 + 4 × 8 + 7 on Monday 13 April");
    assert_eq!(due("statutory_answer"), budapest(5, 2, 23, 59) + chrono::Duration::seconds(59));

    // Easter Monday evening: nothing yet. Tuesday 13:30: the warning (80% = 6 h 24 min).
    set_clock(&app, budapest(4, 6, 20, 0));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sla_events(&app, &id).await.is_empty());
    set_clock(&app, budapest(4, 7, 13, 30));
    let events = until_sla_events(&app, &id, 1).await;
    assert_eq!(events, [("SlaWarned".to_owned(), "first_contact".to_owned())]);

    // Tuesday 15:01, still no contact: the breach, once, and a mail to the agents.
    set_clock(&app, budapest(4, 7, 15, 1));
    let events = until_sla_events(&app, &id, 2).await;
    assert_eq!(events[1], ("SlaBreached".to_owned(), "first_contact".to_owned()));
    let outbox = app.dir().join("outbox");
    let mut breach_mail = None;
    for _ in 0..200 {
        breach_mail = crate::mail::mails_in(&outbox).into_iter().find(|m| m.subject.contains("Lejárt határidő"));
        if breach_mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let breach_mail = breach_mail.expect("the breach mail to the agents");
    assert_eq!(breach_mail.to, "agents@tickets.example");
    assert_eq!(breach_mail.cc.as_deref(), Some("kata@tickets.example"), "the assignee gets a copy");
    let mut listed = String::new();
    for _ in 0..100 {
        listed = app.cli(&["outbox", "--all"]);
        if listed.contains("agents@tickets.example, cc kata@tickets.example") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed.contains("agents@tickets.example, cc kata@tickets.example"), "the outbox says who got it: {listed}");
    assert!(breach_mail.subject.starts_with(&format!("[#{number}]")), "{breach_mail:?}");
    assert!(breach_mail.body.contains("2026-04-07 15:00"), "{}", breach_mail.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sla_events(&app, &id).await.len(), 2, "recorded once, whatever the scheduler's rounds");
    let _ = wait_for_mails(&outbox, 1).await;

    // First contact on Tuesday 15:30 (late); the statistics count it and the breach.
    set_clock(&app, budapest(4, 7, 15, 30));
    let answer = app
        .act(&id, "investigate", json!({"category": "complaint", "service_area": "other", "contact_method": "phone"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let mut row = Value::Null;
    for _ in 0..200 {
        let report = app.get("/api/v1/stats/sla?from=2026-04-01&to=2026-04-30&by=contract", &app.quality_manager).await;
        assert_eq!(report.status, StatusCode::OK, "{}", report.body);
        row = report.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == "first_contact")
            .cloned()
            .unwrap_or_default();
        if row["met"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(row["group"], "acme");
    assert_eq!(
        (row["met"].as_i64(), row["met_in_time"].as_i64(), row["breaches"].as_i64()),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(row["compliance"], 0.0);
    assert_eq!(row["business_hours_median"], 8.5);
    assert_eq!(row["wall_clock_hours_median"], 120.5);

    // The complaint is rejected: only with its reasons, and the customer's answer names the
    // authority and the conciliation body they can turn to.
    let rejected = json!({"resolution": "A számla helyes.", "root_cause": "billing", "within_own_authority": true,
        "complaint_outcome": "rejected"});
    let refused = app.act(&id, "resolve", rejected.clone()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        "{}",
        refused.body
    );
    let mut with_reasons = rejected;
    with_reasons["rejection_reasons"] = json!("A szerződés 4.2. pontja szerint a licenc két tételben esedékes.");
    let resolved = app.act(&id, "resolve", with_reasons).await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let mut answer = None;
    for _ in 0..200 {
        answer = crate::mail::mails_in(&outbox).into_iter().find(|m| m.subject.contains("Válasz panaszára"));
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = answer.expect("the answer to the complaint");
    assert_eq!(answer.to, "anna@acme.hu");
    assert!(answer.body.contains("elutasítottuk") && answer.body.contains("4.2. pontja"), "{}", answer.body);
    assert!(
        answer.body.contains("fogyasztóvédelmi hatósághoz") && answer.body.contains("Békéltető Testület"),
        "{}",
        answer.body
    );

    // By ISO week: the late first contact and its breach fall in the week of Easter Monday.
    let weekly = app.get("/api/v1/stats/sla?from=2026-04-01&to=2026-04-30&period=week", &app.quality_manager).await;
    assert_eq!(weekly.status, StatusCode::OK, "{}", weekly.body);
    let first = weekly.body["rows"].as_array().unwrap().iter().find(|r| r["target"] == "first_contact").unwrap();
    assert_eq!((first["period_start"].as_str(), first["met"].as_i64()), (Some("2026-04-06"), Some(1)), "{first}");

    priority_and_a_contracts_own_hours_set_the_due_time(&app).await;
}

/// A contract open on Saturday mornings in London time, with a tighter first-contact target for
/// urgent tickets: the due time follows the priority, and the queue filters by it.
async fn priority_and_a_contracts_own_hours_set_the_due_time(app: &TestApp) {
    let terms = json!({
        "customer": "Corner Shop Ltd", "email_domains": ["shop.example"],
        "sla": {"first_contact_minutes": 240}, "sla_by_priority": {"urgent": {"first_contact_minutes": 60}},
        "working_hours": {"sat": "09:00-13:00"}, "time_zone": "Europe/London", "warn_percent": 50,
    });
    let saved = app.request(Method::PUT, "/api/v1/contracts/shop", Some(&app.admin), &[], Some(terms.clone())).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let mut bad = terms;
    bad["working_hours"] = json!({"sat": "13:00-09:00"});
    let refused = app.request(Method::PUT, "/api/v1/contracts/shop", Some(&app.admin), &[], Some(bad)).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));

    // Saturday 11 April 2026, 09:00 in London (10:00 in Budapest): an urgent report.
    let london = |day: u32, hour: u32| {
        chrono_tz::Europe::London.with_ymd_and_hms(2026, 4, day, hour, 0, 0).single().unwrap().with_timezone(&Utc)
    };
    set_clock(app, london(11, 9));
    let created = app
        .create_ticket_with(json!({
            "channel": "phone", "priority": "urgent",
            "reporter": {"name": "John Smith", "email": "john@shop.example"},
            "subject": "Till is down", "message": "Nothing prints.",
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        (created.body["priority"].as_str(), created.body["contract_id"].as_str()),
        (Some("urgent"), Some("shop"))
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let first_contact_due = async |expected: DateTime<Utc>| {
        let mut due = None;
        for _ in 0..200 {
            let clocks = app.get(&format!("/api/v1/tickets/{id}/sla"), &app.agent).await.body;
            due = clocks
                .as_array()
                .and_then(|c| c.iter().find(|c| c["target"] == "first_contact"))
                .and_then(|c| c["due_at"].as_str().and_then(|d| d.parse::<DateTime<Utc>>().ok()));
            if due == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("first contact due {due:?}, expected {expected}");
    };
    first_contact_due(london(11, 10)).await;
    let clocks = app.get(&format!("/api/v1/tickets/{id}/sla"), &app.agent).await.body;
    let warn_at = clocks[0]["warn_at"].as_str().and_then(|w| w.parse::<DateTime<Utc>>().ok());
    assert_eq!(warn_at, Some(london(11, 9) + chrono::Duration::minutes(30)), "the contract warns at 50%: {clocks}");
    let urgent = crate::queue_until(app, "/api/v1/queues/all-open?priority=urgent", |items| items.len() == 1).await;
    assert_eq!(urgent[0]["id"].as_str(), Some(id.as_str()));

    // Not so urgent after all: four business hours, the whole Saturday morning.
    let lowered = app.act(&id, "priority", json!({"priority": "normal", "reason": "a spare till works"})).await;
    assert_eq!((lowered.status, &lowered.body["priority"]), (StatusCode::OK, &json!("normal")), "{}", lowered.body);
    assert_eq!(
        app.act(&id, "priority", json!({"priority": "normal", "reason": "again"})).await.code(),
        "nothing_to_change"
    );
    first_contact_due(london(11, 13)).await;
    crate::queue_until(app, "/api/v1/queues/all-open?priority=urgent", |items| items.is_empty()).await;
    let events = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await.body;
    let changed = events["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "Prioritised").unwrap();
    assert_eq!(
        changed["payload"],
        json!({"priority": "normal", "previous_priority": "urgent", "reason": "a spare till works"})
    );
}
