//! Crypto-shredding: personal data is sealed in the store, a person's erasure destroys their
//! keys (the history reads "[erased]", the figures and the ledger stand), a complaint under
//! its five-year hold is restricted instead, and the retention job erases when periods end.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app_with};

async fn erase(app: &TestApp, body: Value) -> crate::harness::Answer {
    app.request(Method::POST, "/api/v1/subjects/erase", Some(&app.admin), &[], Some(body)).await
}

async fn work_to_closed(app: &TestApp, number: &str, category: &str) {
    for (action, body) in [
        ("acknowledge", json!({})),
        ("investigate", json!({"category": category, "service_area": "norma", "contact_method": "email"})),
        ("replies", json!({"body": "Kedves Anna, megnéztük a számlát."})),
        (
            "resolve",
            json!({"resolution": "Anna számláját javítottuk.", "root_cause": "billing", "within_own_authority": true}),
        ),
        ("close", json!({})),
    ] {
        let done = app.act(number, action, body).await;
        assert_eq!(done.status, StatusCode::OK, "{action}: {}", done.body);
    }
}

/// Waits until `check` holds of the answer to `path`.
async fn until(app: &TestApp, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.get(path, &app.admin).await;
        if check(&answer.body) {
            return answer.body;
        }
        assert!(Instant::now() < deadline, "{what}: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where any of `needles` is still stored: the SQLite file (after a WAL checkpoint) or any
/// PostgreSQL table (after a VACUUM), the outbox and attachment folders.
async fn stored_anywhere(app: &TestApp, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    if app.is_postgres() {
        app.execute_sql("SELECT 1", "VACUUM").await;
        for table in [
            "events",
            "ticket_view",
            "ticket_index",
            "stats_days",
            "sla_clocks",
            "mail_outbox",
            "mail_threads",
            "survey_tokens",
            "idempotency_keys",
            "personal_keys",
            "ledger_leaves",
            "ledger_checkpoints",
            "console_sessions",
            "saved_views",
            "canned_replies",
        ] {
            for needle in needles {
                let sql = format!("SELECT COUNT(*) FROM {table} t WHERE t::text LIKE '%{needle}%'");
                if app.query_count(&sql).await > 0 {
                    found.push(format!("table {table}: {needle}"));
                }
            }
        }
    } else {
        app.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)", "SELECT 1").await;
        let path = app.database_url().strip_prefix("sqlite:").unwrap().to_owned();
        for file in [path.clone(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(format!("{file}: {needle}"));
                }
            }
        }
    }
    for dir in ["outbox", "attachments"] {
        for entry in walk(&app.dir().join(dir)) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            for needle in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(format!("{}: {needle}", entry.display()));
                }
            }
        }
    }
    found
}

/// Waits (at most 15 s: the read models follow the log, the outbox is scrubbed after the key
/// is destroyed) until none of `needles` is stored anywhere; what is still found then.
async fn gone_everywhere(app: &TestApp, needles: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = stored_anywhere(app, needles).await;
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] })
        .collect()
}

fn eml_files_mentioning(app: &TestApp, needle: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(app.dir().join("outbox")) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(needle))
        .count()
}

pub async fn erasure_shreds_a_persons_data_and_keeps_the_figures_and_the_proof(backend: Backend) {
    let Some(mut app) = spawn_app_with(
        backend,
        &[("TICKETD_MAIL", "files"), ("TICKETD_LOG", "debug"), ("TEST_STDERR_FILE", "{dir}/server.log")],
    )
    .await
    else {
        return;
    };
    let key = app.dir().join("ledger.key");
    app.cli(&["ledger", "init-key", "--out", key.to_str().unwrap(), "--name", "test.example/ledger"]);
    app.stop();
    app.env.push(("TICKETD_LEDGER_KEY".into(), key.display().to_string()));
    app.start();

    // Anna writes through the form with a file, and phones in a complaint; Hanna writes too.
    let pdf = b"%PDF-1.4\n% Anna szamlaja\n%%EOF\n";
    let form = json!({"name": "Kovács Anna", "email": "anna@example.hu", "subject": "Hibás számla",
                      "message": "Nem tudok belépni, és a számla is hibás.",
                      "attachment": {"file_name": "szamla.pdf",
                                     "content_base64": base64::engine::general_purpose::STANDARD.encode(pdf)}});
    let sent = app.request(Method::POST, "/api/v1/contact", None, &[], Some(form)).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    let plain = sent.body["number"].to_string();
    let complaint = app
        .create_ticket_with(json!({"channel": "phone", "category": "complaint", "service_area": "norma",
            "reporter": {"name": "Kovács Anna", "email": "anna@example.hu", "phone": "+36 30 111 2222"},
            "subject": "Panasz a díjról", "message": "Anna panasza: kétszer vonták le."}))
        .await;
    assert_eq!(complaint.status, StatusCode::CREATED, "{}", complaint.body);
    let complaint = complaint.body["number"].to_string();
    let hanna = app
        .create_ticket_with(
            json!({"channel": "phone", "reporter": {"name": "Szabó Hanna", "email": "hanna@example.hu"},
            "subject": "Hanna kérdése", "message": "Hanna üzenete."}),
        )
        .await;
    let hanna = hanna.body["number"].to_string();
    work_to_closed(&app, &plain, "user_support").await;
    for (action, body) in [
        ("acknowledge", json!({})),
        ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
        (
            "resolve",
            json!({"resolution": "Anna panaszát elfogadtuk.", "root_cause": "billing",
                           "within_own_authority": true, "complaint_outcome": "upheld"}),
        ),
    ] {
        let done = app.act(&complaint, action, body).await;
        assert_eq!(done.status, StatusCode::OK, "{action}: {}", done.body);
    }
    let ticket = app.get(&format!("/api/v1/tickets/{plain}"), &app.agent).await;
    assert_eq!(ticket.body["reporter"]["name"], "Kovács Anna", "read back in the clear: {}", ticket.body);
    let sha = ticket.body["attachments"][0]["sha256"].as_str().map(str::to_owned).or_else(|| {
        // The attachment is listed on the ticket's first event.
        None
    });
    let events = app.get(&format!("/api/v1/tickets/{plain}/events"), &app.agent).await;
    let sha = sha.unwrap_or_else(|| {
        events.body["events"][0]["payload"]["personal"]["attachments"][0]["sha256"].as_str().unwrap().to_owned()
    });
    let file = format!("/api/v1/tickets/{plain}/attachments/{sha}");
    assert_eq!(app.get(&file, &app.agent).await.status, StatusCode::OK);
    // Nothing personal is in the store as plain text: the events hold it sealed.
    for needle in ["Kovács", "anna@example.hu", "Nem tudok", "Hanna üzenete"] {
        let clear = app
            .query_count(&format!("SELECT COUNT(*) FROM events WHERE CAST(payload AS TEXT) LIKE '%{needle}%'"))
            .await;
        assert_eq!(clear, 0, "{needle} is stored in the clear");
    }
    assert!(app.query_count("SELECT COUNT(*) FROM events WHERE CAST(payload AS TEXT) LIKE '%xc20p1.%'").await >= 6);
    // The mails went out (the confirmation, the reply, the resolution, the survey).
    until(&app, &format!("/api/v1/tickets/{plain}/events"), "the survey was not sent", |b| {
        b["events"].as_array().is_some_and(|e| e.iter().any(|e| e["event_type"] == "SurveySent"))
    })
    .await;
    let mailed = eml_files_mentioning(&app, "anna@example.hu");
    assert!(mailed >= 3, "mails to Anna: {mailed}");
    // Her access export as a ZIP: the document and the file she sent.
    let zipped = app
        .client
        .get(format!("{}/api/v1/subjects/export?email=anna%40example.hu&format=zip", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), StatusCode::OK);
    assert_eq!(zipped.headers()["content-type"], "application/zip");
    let bytes = zipped.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    assert!(names.contains(&"export.json".to_owned()), "{names:?}");
    let file_name = format!("files/{plain}/{sha}/szamla.pdf");
    let mut entry = archive.by_name(&file_name).unwrap_or_else(|_| panic!("{file_name} not in {names:?}"));
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
    assert_eq!(content, pdf);
    drop(entry);
    let mut document = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("export.json").unwrap(), &mut document).unwrap();
    assert!(document.contains("Kovács Anna") && !document.contains("Hanna"), "{document}");
    let today = chrono::Utc::now().date_naive();
    let stats_path = format!("/api/v1/stats/summary?period=day&from={today}&to={today}");
    let figures = app.get(&stats_path, &app.quality_manager).await.body;

    // The erasure request.
    let refused = erase(&app, json!({"email": "anna@example.hu", "reason": "", "request_reference": "DPO-1"})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let nobody = erase(&app, json!({"reason": "kérte", "request_reference": "DPO-1"})).await;
    assert_eq!(nobody.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", nobody.body);
    let agent = app
        .request(
            Method::POST,
            "/api/v1/subjects/erase",
            Some(&app.agent),
            &[],
            Some(json!({"email": "anna@example.hu",
            "reason": "kérte", "request_reference": "DPO-1"})),
        )
        .await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
    let done = erase(
        &app,
        json!({"email": "Anna@Example.hu", "reason": "the data subject asked (GDPR Art. 17)", "request_reference": "DPO-2026-17"}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let outcomes = done.body["tickets"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2, "Anna's two tickets, not Hanna's: {}", done.body);
    let of = |number: &str| outcomes.iter().find(|t| t["number"].to_string() == number).cloned().unwrap();
    assert_eq!(of(&plain)["outcome"], "erased");
    assert_eq!(of(&complaint)["outcome"], "restricted", "a complaint's record is held");
    let resolved_at = app.get(&format!("/api/v1/tickets/{complaint}"), &app.auditor).await.body["resolved_at"].clone();
    let resolved: chrono::DateTime<chrono::Utc> = serde_json::from_value(resolved_at).unwrap();
    let hold: chrono::DateTime<chrono::Utc> = serde_json::from_value(of(&complaint)["hold_until"].clone()).unwrap();
    assert_eq!(hold, resolved.checked_add_months(chrono::Months::new(60)).unwrap(), "five years after the answer");

    // The erased ticket: every personal field reads as erased, the steps and figures stand.
    let ticket = until(&app, &format!("/api/v1/tickets/{plain}"), "the ticket still shows Anna", |b| {
        b["reporter"]["name"] == "[erased]"
    })
    .await;
    assert_eq!(ticket["reporter"]["email"], Value::Null);
    assert_eq!(ticket["status"], "closed");
    let history = app.get(&format!("/api/v1/tickets/{plain}/events"), &app.auditor).await.body;
    let text = history.to_string();
    for gone in ["Kovács", "anna@example.hu", "Nem tudok", "Kedves Anna", "Anna számláját", "szamla.pdf"] {
        assert!(!text.contains(gone), "{gone} still in the history: {text}");
    }
    let erased =
        history["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "PersonalDataErased").unwrap();
    assert_eq!(erased["payload"]["request_reference"], "DPO-2026-17");
    assert_eq!(erased["actor"]["name"], "root-admin", "who: {erased}");
    assert_eq!(app.get(&file, &app.auditor).await.status, StatusCode::NOT_FOUND, "the file is gone");
    // Nothing personal is added to it again: a note or a reply is refused with a clear code.
    let note = app.act(&plain, "notes", json!({"body": "Anna telefonált."})).await;
    assert_eq!((note.status, note.code()), (StatusCode::CONFLICT, "personal_data_erased"), "{}", note.body);
    let queue = until(&app, "/api/v1/queues/all-open?limit=200", "the restricted ticket is still queued", |b| {
        !b["items"].as_array().unwrap().iter().any(|t| t["number"].to_string() == complaint)
    })
    .await;
    assert!(queue["items"].as_array().unwrap().iter().any(|t| t["number"].to_string() == hanna), "{queue}");
    // The console's navigation counts what the queue lists: the restricted ticket is not counted.
    crate::console::put_staff(&app, "nora", "agent", crate::console::PASSWORD);
    let nora = crate::console::sign_in(&app, "nora").await;
    let listed = queue["items"].as_array().unwrap().len();
    let page = nora.get("/console/queues/all-open").await;
    assert!(
        page.html.contains(&format!("data-count=\"all-open\" aria-label=\"{listed} ")),
        "the all-open count is the {listed} tickets listed: {}",
        page.html.split("data-count=\"all-open\"").nth(1).unwrap_or("").chars().take(60).collect::<String>()
    );
    // The restricted complaint keeps its record for the auditors.
    let held = app.get(&format!("/api/v1/tickets/{complaint}"), &app.auditor).await.body;
    assert_eq!(held["reporter"]["name"], "Kovács Anna");
    assert_eq!(app.get(&format!("/api/v1/tickets/{hanna}"), &app.agent).await.body["reporter"]["name"], "Szabó Hanna");
    assert_eq!(app.get(&stats_path, &app.quality_manager).await.body, figures, "the statistics are unchanged");
    // The mails to Anna about the erased ticket are gone; those of the held complaint and Hanna's stay.
    assert_eq!(eml_files_mentioning(&app, "Anna számláját"), 0);
    assert!(eml_files_mentioning(&app, "hanna@example.hu") >= 1);
    // Nothing of the erased ticket's own texts or file is stored anywhere any more (her name and
    // address stay only in the held complaint).
    let erased_texts =
        ["Nem tudok belépni, és a számla is hibás.", "Hibás számla", "% Anna szamlaja", "Anna számláját"];
    let left = gone_everywhere(&app, &erased_texts).await;
    assert!(left.is_empty(), "erased data is still stored: {left:?}");
    // The ledger still verifies: erasure changed no stored byte of the log.
    app.cli(&["verify", "--ledger-key", key.to_str().unwrap()]);
    // Asked again: the erased ticket is no longer found, the held one stays held.
    let again =
        erase(&app, json!({"email": "anna@example.hu", "reason": "asked again", "request_reference": "DPO-2026-18"}))
            .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let numbers: Vec<String> =
        again.body["tickets"].as_array().unwrap().iter().map(|t| t["number"].to_string()).collect();
    assert_eq!(numbers, [complaint.clone()]);

    // A restart and a rebuild read the same: the key is gone for good.
    app.stop();
    app.cli(&["rebuild", "ticket_view"]);
    app.start();
    let ticket = app.get(&format!("/api/v1/tickets/{plain}"), &app.agent).await.body;
    assert_eq!(ticket["reporter"]["name"], "[erased]");
    assert_eq!(app.dump_table("ticket_view").await.matches("Kovács").count(), 1, "only the held complaint's row");

    // No log line carried Anna's or Hanna's data.
    app.stop();
    let log = std::fs::read_to_string(app.dir().join("server.log")).unwrap();
    assert!(log.contains("personal data erased"), "the log says what was done");
    for personal in ["Kovács", "anna@example.hu", "Hanna", "hanna@example.hu", "Nem tudok", "+36 30"] {
        let line = log.lines().find(|line| line.contains(personal));
        assert!(line.is_none(), "the log carries {personal}: {line:?}");
    }
}

/// The retention job: a category's period ends, its tickets are erased; a held complaint is
/// erased when its five years end, not before.
pub async fn retention_erases_each_ticket_when_its_period_ends(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("TICKETD_MAIL", "files"),
            ("TICKETD_CLOCK_FILE", "{dir}/now"),
            ("TICKETD_RETENTION", "bug_report=30"),
            ("TICKETD_RETENTION_CHECK_SECONDS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let set_clock = |now: &str| std::fs::write(app.dir().join("now"), now).unwrap();
    set_clock("2026-01-05T09:00:00Z");
    let report = |name: &str, email: &str, category: &str| {
        json!({"channel": "phone", "category": category, "service_area": "norma",
               "reporter": {"name": name, "email": email}, "subject": "Hiba", "message": format!("{name} írja.")})
    };
    let bug =
        app.create_ticket_with(report("Kiss Béla", "bela@example.hu", "bug_report")).await.body["number"].to_string();
    let support =
        app.create_ticket_with(report("Tóth Vera", "vera@example.hu", "user_support")).await.body["number"].to_string();
    let complaint =
        app.create_ticket_with(report("Nagy Éva", "eva@example.hu", "complaint")).await.body["number"].to_string();
    work_to_closed(&app, &bug, "bug_report").await;
    work_to_closed(&app, &support, "user_support").await;
    work_to_closed(&app, &complaint, "complaint").await;
    let asked = erase(&app, json!({"email": "eva@example.hu", "reason": "asked", "request_reference": "DPO-7"})).await;
    assert_eq!(asked.body["tickets"][0]["outcome"], "restricted", "{}", asked.body);

    let name = |number: String| {
        let app = &app;
        async move { app.get(&format!("/api/v1/tickets/{number}"), &app.auditor).await.body["reporter"]["name"].clone() }
    };
    // 29 days on: nothing is due.
    set_clock("2026-02-03T09:30:00Z");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(name(bug.clone()).await, "Kiss Béla");
    // 31 days on: the bug report's period has ended; the other category has none, the complaint is held.
    set_clock("2026-02-05T09:30:00Z");
    until(&app, &format!("/api/v1/tickets/{bug}"), "the bug report was not erased", |b| {
        b["reporter"]["name"] == "[erased]"
    })
    .await;
    let history = app.get(&format!("/api/v1/tickets/{bug}/events"), &app.auditor).await.body;
    let erased =
        history["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "PersonalDataErased").unwrap().clone();
    assert_eq!(erased["payload"]["request_reference"], "retention: bug_report after 30 days");
    assert_eq!(erased["actor"]["component"], "retention");
    assert_eq!(name(support.clone()).await, "Tóth Vera");
    assert_eq!(name(complaint.clone()).await, "Nagy Éva");
    // Five years after the answer, a day short: still held; then erased.
    set_clock("2031-01-04T09:30:00Z");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(name(complaint.clone()).await, "Nagy Éva");
    set_clock("2031-01-06T09:30:00Z");
    until(&app, &format!("/api/v1/tickets/{complaint}"), "the complaint was not erased", |b| {
        b["reporter"]["name"] == "[erased]"
    })
    .await;
    let history = app.get(&format!("/api/v1/tickets/{complaint}/events"), &app.auditor).await.body;
    let erased =
        history["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "PersonalDataErased").unwrap().clone();
    assert_eq!(erased["payload"]["request_reference"], "a legal hold ended");
    assert_eq!(name(support).await, "Tóth Vera", "a category without a period is kept");
    // No byte of the two erased people's names, addresses or messages is stored anywhere.
    let left = gone_everywhere(&app, &["Nagy Éva", "eva@example.hu", "Kiss Béla", "bela@example.hu"]).await;
    assert!(left.is_empty(), "erased data is still stored: {left:?}");
    assert!(!stored_anywhere(&app, &["Tóth Vera"]).await.is_empty(), "the check finds what is kept");
}

/// Events written before sealing existed hold their personal part in the clear: `ticketd
/// migrate` seals them once, recording each change, and the ledger accepts exactly those.
pub async fn migrate_seals_events_stored_in_the_clear_and_the_ledger_accepts_exactly_that(backend: Backend) {
    let Some(mut app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    let key = app.dir().join("ledger.key");
    app.cli(&["ledger", "init-key", "--out", key.to_str().unwrap(), "--name", "test.example/ledger"]);
    app.stop();
    app.env.push(("TICKETD_LEDGER_KEY".into(), key.display().to_string()));
    app.start();
    assert_eq!(app.create_ticket().await.status, StatusCode::CREATED);
    // A report stored by an older version: its personal part in the clear.
    app.stop();
    let stream = format!("ticket-{}", uuid::Uuid::now_v7());
    let payload =
        json!({"number": 900, "channel": "phone", "category": null, "service_area": null, "contract_id": null,
        "priority": "normal", "language": "hu", "personal": {"name": "Régi Rita", "email": "rita@example.hu",
        "reply_to": null, "phone": null, "subject": "Régi bejelentés", "message": "Ezt még a titkosítás előtt írtam.",
        "attachments": []}})
        .to_string();
    app.execute_sql(
        &format!(
            "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, occurred_at, recorded_at, \
             actor, correlation_id, causation_id, payload) SELECT randomblob(16), '{stream}', 1, 'Received', 4, \
             occurred_at, recorded_at, actor, randomblob(16), NULL, '{payload}' FROM events WHERE position = 1"
        ),
        &format!(
            "INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version, occurred_at, \
             recorded_at, actor, correlation_id, causation_id, payload) SELECT (SELECT MAX(position) + 1 FROM events), \
             gen_random_uuid(), '{stream}', 1, 'Received', 4, occurred_at, recorded_at, actor, gen_random_uuid(), NULL, \
             '{payload}'::jsonb FROM events WHERE position = (SELECT MIN(position) FROM events)"
        ),
    )
    .await;
    app.start();
    let clear = "SELECT COUNT(*) FROM events WHERE CAST(payload AS TEXT) LIKE '%Régi Rita%'";
    assert_eq!(app.query_count(clear).await, 1);
    until(&app, "/api/v1/tickets/900", "the old report does not read", |b| b["reporter"]["name"] == "Régi Rita").await;
    // Recorded by the ledger and signed as it was.
    let before = until(&app, "/api/v1/audit/tickets/900/proof", "the old report is not proven", |b| {
        b["events"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    assert_eq!(before["events"][0]["event"]["payload"]["personal"]["name"], "Régi Rita");

    app.stop();
    let said = app.cli(&["migrate"]);
    assert!(said.contains("sealed the personal data of 1 event(s)"), "{said}");
    assert!(!app.cli(&["migrate"]).contains("sealed"), "once: {said}");
    assert_eq!(app.query_count(clear).await, 0, "nothing personal in the clear any more");
    app.start();
    // The ledger's start re-hashes the event at its last leaf (the sealed one): it goes on, past the record.
    let head = app.query_count("SELECT MAX(position) FROM events").await;
    let ready = until(&app, "/readyz", "the ledger did not go on", |b| {
        let ledger = b["projections"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "ledger").cloned());
        ledger.is_some_and(|l| l["position"].as_i64() == Some(head) || !l["failed"].is_null())
    })
    .await;
    let ledger = ready["projections"].as_array().unwrap().iter().find(|p| p["name"] == "ledger").unwrap().clone();
    assert!(ledger["failed"].is_null(), "the ledger accepts the recorded change: {ready}");
    let ticket = app.get("/api/v1/tickets/900", &app.agent).await.body;
    assert_eq!(ticket["reporter"]["name"], "Régi Rita", "it reads as before");
    let events = app.get("/api/v1/tickets/900/events", &app.auditor).await.body;
    let record =
        events["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "PersonalDataSealed").unwrap().clone();
    assert_eq!(record["payload"]["events"][0]["leaf_before"], before["events"][0]["leaf_hash"]);
    assert_eq!(record["actor"]["component"], "migrate");
    // `verify` accepts exactly the recorded change; the proof checks offline.
    let verified = app.cli(&["verify", "--ledger-key", key.to_str().unwrap()]);
    assert!(verified.contains("sealed in place"), "{verified}");
    let bundle = until(&app, "/api/v1/audit/tickets/900/proof", "the record is not proven yet", |b| {
        b["events"].as_array().is_some_and(|e| e.len() == 2)
    })
    .await;
    assert!(bundle["events"][0]["leaf_before"].is_string(), "{bundle}");
    let file = app.dir().join("proof.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    let public = format!("{}.pub", key.display());
    let checked = app.cli(&["verify-proof", file.to_str().unwrap(), "--public-key", &public]);
    assert!(checked.contains("OK"), "{checked}");
    // A bundle whose sealed event lost its record fails.
    let mut forged = bundle.clone();
    forged["events"].as_array_mut().unwrap().pop();
    std::fs::write(&file, forged.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .args(["verify-proof", file.to_str().unwrap(), "--public-key", &public])
        .output()
        .unwrap();
    assert!(!output.status.success(), "a sealed event without its record is not accepted");

    // A key rotation re-wraps every data key; the old key-encryption key leaves the file.
    app.stop();
    let before_rotation = std::fs::read_to_string(app.kek_file()).unwrap();
    let live = app.query_count("SELECT COUNT(*) FROM personal_keys WHERE wrapped IS NOT NULL").await;
    let rotated = app.cli(&["keys", "rotate", "--new-id", "kek-rotated"]);
    assert!(rotated.contains(&format!("re-wrapped {live} data key(s) under kek-rotated")), "{rotated}");
    assert_eq!(app.query_count("SELECT COUNT(*) FROM personal_keys WHERE kek_id = 'kek-rotated'").await, live);
    let keys = std::fs::read_to_string(app.kek_file()).unwrap();
    let old_id = before_rotation.lines().find(|l| !l.starts_with('#')).unwrap().split(' ').next().unwrap().to_owned();
    assert!(keys.contains("kek-rotated ") && !keys.contains(&format!("{old_id} ")), "{keys}");
    app.start();
    assert_eq!(app.get("/api/v1/tickets/900", &app.agent).await.body["reporter"]["name"], "Régi Rita");
    // The CLI erases like the API (beside the running service); the ledger still verifies the
    // sealed-then-erased event by its record.
    let erased =
        app.cli(&["subjects", "erase", "--email", "rita@example.hu", "--reason", "asked", "--reference", "DPO-9"]);
    assert!(erased.contains("\"outcome\":\"erased\""), "{erased}");
    let verified = app.cli(&["verify", "--ledger-key", key.to_str().unwrap()]);
    assert!(verified.contains("OK:"), "{verified}");
    let ticket = until(&app, "/api/v1/tickets/900", "not erased", |b| b["reporter"]["name"] == "[erased]").await;
    assert_eq!(ticket["reporter"]["email"], Value::Null);
}
