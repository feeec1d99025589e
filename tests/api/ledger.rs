//! The tamper-evident ledger end to end: tampering with the events table directly (triggers
//! off) is named by `ticketd verify`, proofs check offline with `ticketd verify-proof`, and a
//! rewritten ledger fails the consistency proof against a checkpoint kept outside.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app};

/// A server with a ledger key that signs a checkpoint every few events.
async fn with_ledger(backend: Backend) -> Option<TestApp> {
    let mut app = spawn_app(backend).await?;
    app.stop();
    let key = app.dir().join("ledger.key");
    let made = app.cli(&["ledger", "init-key", "--out", key.to_str().unwrap(), "--name", "test.example/ledger"]);
    assert!(made.contains("test.example/ledger+"), "{made}");
    app.env.push(("TICKETD_LEDGER_KEY".into(), key.display().to_string()));
    app.env.push(("TICKETD_LEDGER_CHECKPOINT_EVENTS".into(), "3".into()));
    app.start();
    Some(app)
}

fn public_key(app: &TestApp) -> String {
    app.dir().join("ledger.key.pub").display().to_string()
}

/// Runs `ticketd` and returns (success, stdout + stderr).
fn run(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = app.spawn_cli(args).wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Every event's (position, stream), in the global order.
async fn events(app: &TestApp) -> Vec<(i64, String)> {
    use sqlx::Connection;
    let sql = "SELECT position, stream_id FROM events ORDER BY position";
    if app.is_postgres() {
        let mut connection = sqlx::PgConnection::connect(app.database_url()).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut connection).await.unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(app.database_url()).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut connection).await.unwrap()
    }
}

/// Waits until the ledger has every event the store holds.
async fn ledger_caught_up(app: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = app.query_count("SELECT COUNT(*) FROM events").await;
        let leaves = app.query_count("SELECT COUNT(*) FROM ledger_leaves").await;
        if all == leaves {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the ledger holds {leaves} of {all} events after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_ticket(app: &TestApp, complaint: bool) -> String {
    let mut body = json!({
        "channel": "phone",
        "reporter": {"name": "Kovács Anna", "email": "kovacs.anna@example.hu"},
        "subject": "Nem tudok belépni a Normába",
        "message": "Tegnap óta hibát kapok belépéskor.",
        "service_area": "norma"
    });
    if complaint {
        body["category"] = json!("complaint");
    }
    let created = app.create_ticket_with(body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let number = created.body["number"].to_string();
    let acknowledged = app.act(&number, "acknowledge", json!({})).await;
    assert_eq!(acknowledged.status, StatusCode::OK, "{}", acknowledged.body);
    number
}

fn write(app: &TestApp, name: &str, text: &str) -> String {
    let path = app.dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn proof_file(app: &TestApp, number: &str, name: &str) -> (Value, String) {
    let proof = app.get(&format!("/api/v1/audit/tickets/{number}/proof"), &app.auditor).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
    let file = write(app, name, &proof.body.to_string());
    (proof.body, file)
}

/// Tampers with the events table directly, one change at a time from the newest to the oldest,
/// and each time `ticketd verify` names the change as the first finding, by position.
pub async fn verify_names_the_first_event_altered_removed_reordered_or_inserted(backend: Backend) {
    let Some(mut app) = with_ledger(backend).await else { return };
    let mut numbers = Vec::new();
    for _ in 0..6 {
        numbers.push(new_ticket(&app, false).await);
    }
    ledger_caught_up(&app).await;
    let key = public_key(&app);
    let (ok, text) = run(&app, &["verify", "--public-key", &key]);
    assert!(ok && text.contains("OK: every event is the one recorded"), "{text}");
    app.stop();

    // The streams in the order their tickets were made: A B C D E F; D stays untouched.
    let all = events(&app).await;
    let mut streams: Vec<String> = Vec::new();
    for (_, stream) in &all {
        if !streams.contains(stream) {
            streams.push(stream.clone());
        }
    }
    assert_eq!(streams.len(), 6);
    let of = |stream: usize| all.iter().filter(|(_, s)| *s == streams[stream]).map(|(p, _)| *p).collect::<Vec<_>>();
    let (a, b, c, e, f) = (of(0), of(1), of(2), of(4), of(5));
    let postgres = app.is_postgres();
    app.execute_sql(
        "DROP TRIGGER events_are_immutable_update",
        "ALTER TABLE events DISABLE TRIGGER events_are_immutable",
    )
    .await;
    app.execute_sql("DROP TRIGGER events_are_immutable_delete", "SELECT 1").await;
    let verify_says = |expected: String| {
        let (ok, text) = run(&app, &["verify", "--public-key", &key]);
        assert!(!ok, "verify must fail: {text}");
        assert!(text.contains(&format!("FIRST: {expected}\n")), "expected FIRST: {expected}\n{text}");
    };

    // The newest event altered: also the ledger's own alarm at its next start (below).
    let last = *f.last().unwrap();
    app.execute_sql(
        &format!("UPDATE events SET payload = json_set(payload, '$.forged', 1) WHERE position = {last}"),
        &format!("UPDATE events SET payload = payload || '{{\"forged\": 1}}' WHERE position = {last}"),
    )
    .await;
    verify_says(format!("the event at position {last} was altered"));

    // An event inserted before E's first one (SQLite's positions are dense: the later ones move on).
    let at = e[0];
    // A copy of E's first event (under another id and version) at `position`.
    let insert = |position: i64, id: &str, source: i64| {
        format!(
            "INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version, occurred_at, \
             recorded_at, actor, correlation_id, causation_id, payload) SELECT {position}, {id}, stream_id, version + \
             1000, event_type, schema_version, occurred_at, recorded_at, actor, correlation_id, causation_id, payload \
             FROM events WHERE position = {source}"
        )
    };
    let inserted = if postgres {
        let gap = at - 1;
        assert!(!all.iter().any(|(p, _)| *p == gap), "PostgreSQL positions leave gaps between transactions");
        app.execute_sql("SELECT 1", &insert(gap, "gen_random_uuid()", at)).await;
        gap
    } else {
        app.execute_sql(&format!("UPDATE events SET position = -position WHERE position >= {at}"), "SELECT 1").await;
        app.execute_sql("UPDATE events SET position = 1 - position WHERE position < 0", "SELECT 1").await;
        app.execute_sql(&insert(at, "randomblob(16)", at + 1), "SELECT 1").await;
        at
    };
    verify_says(format!("an event was inserted at position {inserted}"));

    // C's two events swap places.
    let (x, y) = (c[0], c[1]);
    let parked = if postgres { 1 } else { -1 };
    for (from, to) in [(x, parked), (y, x), (parked, y)] {
        let sql = format!("UPDATE events SET position = {to} WHERE position = {from}");
        app.execute_sql(&sql, &sql).await;
    }
    verify_says(format!("events were reordered: the event at position {x} was recorded at position {y}"));

    // B's second event deleted, its first's time moved by a microsecond.
    let sql = format!("DELETE FROM events WHERE position = {}", b[1]);
    app.execute_sql(&sql, &sql).await;
    verify_says(format!("the event at position {} was removed", b[1]));
    app.execute_sql(
        &format!("UPDATE events SET recorded_at = recorded_at + 1 WHERE position = {}", b[0]),
        &format!("UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' WHERE position = {}", b[0]),
    )
    .await;
    verify_says(format!("the event at position {} was altered", b[0]));

    // A's actor, then A's first payload.
    app.execute_sql(
        &format!("UPDATE events SET actor = json_set(actor, '$.name', 'mallory') WHERE position = {}", a[1]),
        &format!("UPDATE events SET actor = jsonb_set(actor, '{{name}}', '\"mallory\"') WHERE position = {}", a[1]),
    )
    .await;
    verify_says(format!("the event at position {} was altered", a[1]));
    app.execute_sql(
        &format!("UPDATE events SET payload = json_set(payload, '$.subject', 'Mást írtam') WHERE position = {}", a[0]),
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{subject}}', '\"Mást írtam\"') WHERE position = {}",
            a[0]
        ),
    )
    .await;
    verify_says(format!("the event at position {} was altered", a[0]));

    // The ledger stops at its next start and says so; it repairs nothing.
    let leaves = app.query_count("SELECT COUNT(*) FROM ledger_leaves").await;
    app.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ledger = loop {
        let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
        let ledger = ready.body["projections"].as_array().unwrap().iter().find(|p| p["name"] == "ledger").cloned();
        if let Some(ledger) = ledger.filter(|l| l["failed"].is_string()) {
            break ledger;
        }
        assert!(std::time::Instant::now() < deadline, "the ledger did not raise the alarm: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(ledger["failed"].as_str().unwrap().contains("LEDGER MISMATCH"), "{ledger}");
    let more = new_ticket(&app, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.query_count("SELECT COUNT(*) FROM ledger_leaves").await, leaves, "a stopped ledger adds nothing");

    // D was not touched: its proof still checks offline.
    let (_, file) = proof_file(&app, &numbers[3], "d-proof.json").await;
    let (ok, text) = run(&app, &["verify-proof", &file, "--public-key", &key]);
    assert!(ok && text.starts_with("OK "), "{text}");
    // A's does not: its first event is not the one recorded.
    let (_, file) = proof_file(&app, &numbers[0], "a-proof.json").await;
    let (ok, text) = run(&app, &["verify-proof", &file, "--public-key", &key]);
    assert!(!ok && text.contains("FAILED") && text.contains("version 1 "), "{text}");
    let _ = more;
}

/// A ticket's proof and the audit export check offline; a forged event or another key fails;
/// consistency between an old and a new checkpoint holds, and fails once the ledger was
/// rewritten and signed again, against the old checkpoint kept outside.
pub async fn proofs_check_offline_and_a_rewritten_ledger_fails_its_old_checkpoint(backend: Backend) {
    let Some(mut app) = with_ledger(backend).await else { return };
    let key = public_key(&app);
    let first = new_ticket(&app, true).await;
    new_ticket(&app, false).await;
    ledger_caught_up(&app).await;

    let checkpoint = app.request(Method::POST, "/api/v1/audit/checkpoint", Some(&app.auditor), &[], None).await;
    assert_eq!(checkpoint.status, StatusCode::CREATED);
    let old = checkpoint.body.as_str().unwrap().to_owned();
    assert!(old.starts_with("test.example/ledger\n"), "{old}");
    let old_size: u64 = old.lines().nth(1).unwrap().parse().unwrap();
    let old_file = write(&app, "old-checkpoint.txt", &old);
    let served = app.get("/api/v1/audit/checkpoint", &app.quality_manager).await;
    assert_eq!(served.body.as_str(), Some(old.as_str()), "the newest checkpoint is served");
    let refused = app.request(Method::POST, "/api/v1/audit/checkpoint", Some(&app.agent), &[], None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = app.get(&format!("/api/v1/audit/tickets/{first}/proof"), &app.agent).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "proofs hold personal data: auditors and admins only");

    // The proof of a ticket checks offline, with its public key only.
    let (bundle, file) = proof_file(&app, &first, "proof.json").await;
    let history = app.get(&format!("/api/v1/tickets/{first}/events"), &app.agent).await;
    assert_eq!(bundle["events"].as_array().unwrap().len(), history.body["events"].as_array().unwrap().len());
    let (ok, text) = run(&app, &["verify-proof", &file, "--public-key", &key]);
    assert!(ok && text.contains("OK bundle 1: ") && text.contains(" events of ticket-"), "{text}");
    let (_, other) = {
        let other = app.dir().join("other.key");
        app.cli(&["ledger", "init-key", "--out", other.to_str().unwrap(), "--name", "test.example/ledger"]);
        ((), format!("{}.pub", other.display()))
    };
    let (ok, text) = run(&app, &["verify-proof", &file, "--public-key", &other]);
    assert!(!ok && text.contains("signature"), "another key does not verify it: {text}");
    // A forged event, its leaf hash forged along: not in the signed tree.
    let mut forged = bundle.clone();
    forged["events"][0]["event"]["payload"]["subject"] = json!("Mást írtam");
    let leaf: ticket_ledger::leaf::LeafEvent = serde_json::from_value(forged["events"][0]["event"].clone()).unwrap();
    forged["events"][0]["leaf_hash"] = json!(ticket_ledger::hash_text(&leaf.leaf_hash()));
    let forged_file = write(&app, "forged.json", &forged.to_string());
    let (ok, text) = run(&app, &["verify-proof", &forged_file, "--public-key", &key]);
    assert!(!ok && text.contains("version 1 ") && text.contains("not leaf"), "{text}");
    // A left-out event is noticed.
    let mut gap = bundle.clone();
    gap["events"].as_array_mut().unwrap().remove(0);
    let gap_file = write(&app, "gap.json", &gap.to_string());
    let (ok, text) = run(&app, &["verify-proof", &gap_file, "--public-key", &key]);
    assert!(!ok && text.contains("version 1 is missing"), "{text}");

    // The audit export carries each complaint's proof; the file checks as it is.
    let today = chrono::Utc::now();
    let export = app
        .client
        .get(format!(
            "{}/api/v1/audit/export?from={}&to={}",
            app.base,
            (today - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
            (today + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 1, "one complaint: {export}");
    let export_file = write(&app, "export.jsonl", &export);
    let (ok, text) = run(&app, &["verify-proof", &export_file, "--public-key", &key]);
    assert!(ok && text.contains(&format!("OK ticket {first}: ")), "{text}");

    // Later events; consistency between the old checkpoint and a new one.
    new_ticket(&app, false).await;
    ledger_caught_up(&app).await;
    let new = app.request(Method::POST, "/api/v1/audit/checkpoint", Some(&app.admin), &[], None).await;
    let new_size: u64 = new.body.as_str().unwrap().lines().nth(1).unwrap().parse().unwrap();
    assert!(new_size > old_size);
    let consistency = app.get(&format!("/api/v1/audit/consistency?from={old_size}&to={new_size}"), &app.auditor).await;
    assert_eq!(consistency.status, StatusCode::OK, "{}", consistency.body);
    let consistency_file = write(&app, "consistency.json", &consistency.body.to_string());
    let (ok, text) =
        run(&app, &["verify-proof", &consistency_file, "--public-key", &key, "--old-checkpoint", &old_file]);
    assert!(ok && text.contains(&format!("extends the tree of {old_size} events")), "{text}");
    let bad = app.get(&format!("/api/v1/audit/consistency?from={old_size}&to={}", new_size + 1000), &app.auditor).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::NOT_FOUND, "no_such_checkpoint"));

    // Rewrite: the first ticket's event altered, the ledger recorded again from the altered log
    // and signed anew (an insider with the key). The kept checkpoint catches it.
    app.stop();
    let postgres = app.is_postgres();
    let triggers_off = if postgres {
        vec![
            "ALTER TABLE events DISABLE TRIGGER USER".to_owned(),
            "ALTER TABLE ledger_leaves DISABLE TRIGGER USER".to_owned(),
            "ALTER TABLE ledger_nodes DISABLE TRIGGER USER".to_owned(),
            "ALTER TABLE ledger_checkpoints DISABLE TRIGGER USER".to_owned(),
        ]
    } else {
        ["events_are_immutable_update", "ledger_leaves_are_immutable_delete", "ledger_nodes_are_immutable_delete"]
            .into_iter()
            .chain(["ledger_checkpoints_are_immutable_delete"])
            .map(|t| format!("DROP TRIGGER {t}"))
            .collect()
    };
    for sql in &triggers_off {
        app.execute_sql(sql, sql).await;
    }
    let first_position = events(&app).await[0].0;
    app.execute_sql(
        &format!("UPDATE events SET payload = json_set(payload, '$.subject', 'Mást írtam') WHERE position = {first_position}"),
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{subject}}', '\"Mást írtam\"') WHERE position = {first_position}"
        ),
    )
    .await;
    for table in ["ledger_leaves", "ledger_nodes", "ledger_checkpoints"] {
        let sql = format!("DELETE FROM {table}");
        app.execute_sql(&sql, &sql).await;
    }
    let sql = "DELETE FROM projection_checkpoints WHERE name = 'ledger'";
    app.execute_sql(sql, sql).await;
    app.start();
    ledger_caught_up(&app).await;
    let rewritten = app.request(Method::POST, "/api/v1/audit/checkpoint", Some(&app.admin), &[], None).await;
    let rewritten_size: u64 = rewritten.body.as_str().unwrap().lines().nth(1).unwrap().parse().unwrap();
    let consistency =
        app.get(&format!("/api/v1/audit/consistency?from={old_size}&to={rewritten_size}"), &app.auditor).await;
    assert_eq!(consistency.status, StatusCode::OK, "{}", consistency.body);
    let consistency_file = write(&app, "rewritten.json", &consistency.body.to_string());
    let (ok, text) =
        run(&app, &["verify-proof", &consistency_file, "--public-key", &key, "--old-checkpoint", &old_file]);
    assert!(!ok && text.contains("the log was rewritten"), "{text}");
    // The database alone now agrees with itself; the kept checkpoint does not.
    let (ok, text) = run(&app, &["verify", "--public-key", &key]);
    assert!(ok, "{text}");
    let (ok, text) = run(&app, &["verify", "--public-key", &key, "--checkpoint", &old_file]);
    assert!(
        !ok && text.contains(&format!("FIRST: the ledger's tree of {old_size} events does not have the root")),
        "{text}"
    );
}

/// With `--ledger-mail-to`, a signed checkpoint is mailed at start: the copy outside the
/// database. The mailed checkpoint is what `verify --checkpoint` takes.
pub async fn a_signed_checkpoint_is_mailed_to_the_auditors(backend: Backend) {
    let Some(mut app) = crate::harness::spawn_app_with(backend, &[("TICKETD_MAIL", "files")]).await else { return };
    new_ticket(&app, true).await;
    ledger_caught_up(&app).await;
    app.stop();
    let key = app.dir().join("ledger.key");
    app.cli(&["ledger", "init-key", "--out", key.to_str().unwrap(), "--name", "test.example/ledger"]);
    app.env.push(("TICKETD_LEDGER_KEY".into(), key.display().to_string()));
    app.env.push(("TICKETD_LEDGER_MAIL_TO".into(), "Auditors <auditors@example.hu>".into()));
    let leaves = app.query_count("SELECT COUNT(*) FROM ledger_leaves").await;
    app.start();
    let file = app.dir().join("outbox").join(format!("ledger-checkpoint-{leaves}.eml"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint mail at {}", file.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw = std::fs::read(&file).unwrap();
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(mail.to().and_then(|to| to.first()).and_then(|a| a.address()), Some("auditors@example.hu"));
    assert_eq!(mail.subject(), Some(format!("Ledger checkpoint {leaves} (test.example/ledger)").as_str()));
    let body = mail.body_text(0).unwrap().replace("\r\n", "\n");
    let note = &body[body.find("test.example/ledger\n").expect("the note in the body")..];
    let kept = write(&app, "mailed-checkpoint.txt", note);
    let (ok, text) = run(&app, &["verify", "--public-key", &public_key(&app), "--checkpoint", &kept]);
    assert!(ok && text.contains("OK: every event"), "{text}");
}
