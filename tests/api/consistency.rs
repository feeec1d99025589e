//! What a new user and a real client hit (issue #12): reading one's own writes by number on
//! every instance, rebuilds beside a working service, readiness with a stopped projection, and
//! readers that wait only for this store's own appends.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestApp;

/// The read models `ticketd rebuild` rebuilds, by table.
pub(crate) const READ_MODEL_TABLES: [&str; 5] =
    ["ticket_index", "ticket_view", "stats_days", "stats_marks", "sla_clocks"];

fn intake_body(i: u64) -> Value {
    json!({
        "channel": "phone",
        "reporter": {"name": "Kovács Anna", "email": format!("anna{i}@example.hu")},
        "subject": format!("Bejelentés {i}"),
        "message": "Tegnap óta hibát kapok belépéskor.",
    })
}

async fn post(client: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response =
        client.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> (StatusCode, Value) {
    let response = client.get(format!("{base}{path}")).bearer_auth(token).send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Other writers meanwhile: tickets created and worked by id, until `stop`.
fn spawn_writers(
    app: &TestApp,
    writers: usize,
    stop: Arc<AtomicBool>,
    created: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (client, base, token) = (app.client.clone(), app.base.clone(), app.agent.clone());
            let (stop, created) = (stop.clone(), created.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let (status, ticket) =
                        post(&client, &base, &token, "/api/v1/tickets", intake_body(1_000_000 * (w as u64 + 1) + i))
                            .await;
                    assert_eq!(status, StatusCode::CREATED, "{ticket}");
                    created.fetch_add(1, Ordering::Relaxed);
                    let id = ticket["id"].as_str().unwrap().to_owned();
                    let (status, body) =
                        post(&client, &base, &token, &format!("/api/v1/tickets/{id}/acknowledge"), json!({})).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    let investigate =
                        json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"});
                    let (status, body) =
                        post(&client, &base, &token, &format!("/api/v1/tickets/{id}/investigate"), investigate).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                }
            })
        })
        .collect()
}

/// A number the service has handed out resolves at once — on the instance that handed it out and
/// on another one sharing the store — while other writers keep the log busy. (SQLite serves one
/// instance: there a second `serve` refuses to start, and saying why.)
pub async fn a_number_handed_out_resolves_at_once_on_every_instance(app: TestApp) {
    let other = app.start_sibling_if_shared();
    let other_base = other.as_ref().map_or_else(|| app.base.clone(), |o| o.base.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&app, 2, stop.clone(), Arc::default());
    let client = app.client.clone();
    let mut not_found = Vec::new();
    for i in 0..1_000u64 {
        let (status, created) = post(&client, &app.base, &app.agent, "/api/v1/tickets", intake_body(i)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let number = created["number"].as_u64().unwrap();
        // Every other ticket is acted on through the other instance.
        let base = if i % 2 == 0 { app.base.as_str() } else { other_base.as_str() };
        let (status, body) =
            post(&client, base, &app.agent, &format!("/api/v1/tickets/{number}/acknowledge"), json!({})).await;
        if status != StatusCode::OK {
            not_found.push((number, status, body));
            continue;
        }
        let (status, body) = get(&client, base, &app.agent, &format!("/api/v1/tickets/{number}")).await;
        if status != StatusCode::OK || body["status"] != "acknowledged" {
            not_found.push((number, status, body));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    drop(other);
    assert!(
        not_found.is_empty(),
        "{} of 1,000 numbers did not resolve at once: {:?}",
        not_found.len(),
        &not_found[..not_found.len().min(5)]
    );
    // A number nobody handed out is still a 404, at once.
    let (status, body) = get(&client, &app.base, &app.agent, "/api/v1/tickets/987654321").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{body}");
}

/// Row counts of the read models and today's received count, as a reader sees them.
async fn observed(app: &TestApp) -> Vec<i64> {
    WatchedApp::of(app).observed().await
}

pub(crate) async fn dumps(app: &TestApp) -> Vec<String> {
    let mut dumps = Vec::new();
    for table in READ_MODEL_TABLES {
        dumps.push(app.dump_table(table).await);
    }
    dumps
}

async fn assert_no_projection_stopped(app: &TestApp, when: &str) {
    let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status, StatusCode::OK, "{when}: {}", ready.body);
    for projection in ready.body["projections"].as_array().unwrap() {
        assert_eq!(projection["failed"], Value::Null, "{when}: {projection}");
    }
}

/// Waits until the live read models hold `tickets` tickets and have applied the whole log.
async fn caught_up(app: &TestApp, tickets: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views = app.query_count("SELECT count(*) FROM ticket_view").await;
        let behind = app
            .query_count(
                "SELECT count(*) FROM projection_checkpoints WHERE name IN ('ticket_index', 'ticket_view', 'statistics', \
                 'stats_marks', 'sla_clocks') AND position < (SELECT max(position) FROM events)",
            )
            .await;
        if views == tickets && behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the read models never caught up: {views} of {tickets} tickets, {behind} behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ticketd rebuild` beside a running, busy service: every rebuild succeeds, no runner stops,
/// readers never see a partial read model, a rebuild killed part-way leaves the read models as
/// they were, and in the end every read model equals one rebuilt from zero with the service
/// stopped.
pub async fn rebuilds_beside_a_working_service_never_show_a_partial_read_model(mut app: TestApp) {
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    // A history first, then writers and a watcher while rebuilding.
    let seed_stop = Arc::new(AtomicBool::new(false));
    let seeders = spawn_writers(&app, 2, seed_stop.clone(), created.clone());
    while created.load(Ordering::Relaxed) < 60 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seed_stop.store(true, Ordering::Relaxed);
    for seeder in seeders {
        seeder.await.unwrap();
    }
    let writers = spawn_writers(&app, 1, stop.clone(), created.clone());
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let app_view = WatchedApp::of(&app);
        let watching = watching.clone();
        tokio::spawn(async move {
            let mut last = app_view.observed().await;
            let mut shrunk = Vec::new();
            let mut looks = 0;
            while watching.load(Ordering::Relaxed) {
                let now = app_view.observed().await;
                looks += 1;
                if now.iter().zip(&last).any(|(now, before)| now < before) {
                    shrunk.push((last.clone(), now.clone()));
                }
                last = now;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (shrunk, looks)
        })
    };
    for round in 1..=20 {
        let output = app.cli(&["rebuild"]);
        for table in ["ticket_index", "ticket_view", "statistics", "stats_marks", "sla_clocks"] {
            assert!(output.contains(&format!("{table}: rebuilt from")), "round {round}: {output}");
        }
        assert_no_projection_stopped(&app, &format!("after rebuild {round}")).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    watching.store(false, Ordering::Relaxed);
    let (shrunk, looks) = watcher.await.unwrap();
    assert!(looks > 20, "the watcher looked {looks} times");
    assert!(shrunk.is_empty(), "readers saw read models shrink during rebuilds (partial states): {shrunk:?}");
    let tickets = created.load(Ordering::Relaxed) as i64;
    caught_up(&app, tickets).await;
    assert_no_projection_stopped(&app, "after the writers stopped").await;
    let live = dumps(&app).await;

    // The same log rebuilt from zero with the service stopped gives the same read models.
    app.stop();
    app.cli(&["rebuild"]);
    let from_zero = dumps(&app).await;
    for ((table, live), rebuilt) in READ_MODEL_TABLES.iter().zip(&live).zip(&from_zero) {
        assert!(!live.is_empty(), "{table} is empty");
        assert_eq!(live, rebuilt, "{table}: the live read model is not what a rebuild from zero gives");
    }

    // A rebuild killed part-way (SIGKILL) on an idle service leaves every read model whole.
    app.start();
    let before = observed(&app).await;
    for name in ["ticket_view", "statistics", "stats_marks", "ticket_index"] {
        let mut rebuild = app.spawn_cli(&["rebuild", name, "--page-events", "10"]);
        let mut lines = BufReader::new(rebuild.stdout.take().unwrap()).lines();
        let progress = lines.next().expect("a progress line").unwrap();
        assert!(progress.contains("applied aside"), "{progress}");
        rebuild.kill().unwrap();
        rebuild.wait().unwrap();
        assert_eq!(observed(&app).await, before, "after a killed rebuild of {name}, before any new write");
        assert_eq!(dumps(&app).await, from_zero, "after a killed rebuild of {name}");
    }
    // And the next rebuild (which discards the killed one's scratch copy) succeeds.
    let output = app.cli(&["rebuild"]);
    assert!(output.contains("ticket_view: rebuilt from"), "{output}");
    assert_eq!(dumps(&app).await, from_zero);
    assert_no_projection_stopped(&app, "after the rebuilds that were killed").await;
}

/// What the watcher needs of the app, owned (it runs in a task of its own).
struct WatchedApp {
    client: reqwest::Client,
    base: String,
    quality_manager: String,
    counts: Vec<String>,
    database_url: String,
}

impl WatchedApp {
    fn of(app: &TestApp) -> Self {
        Self {
            client: app.client.clone(),
            base: app.base.clone(),
            quality_manager: app.quality_manager.clone(),
            counts: READ_MODEL_TABLES.iter().map(|t| format!("SELECT count(*) FROM {t}")).collect(),
            database_url: app.database_url().to_owned(),
        }
    }

    async fn observed(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for sql in &self.counts {
            counts.push(crate::harness::count(&self.database_url, sql).await);
        }
        let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Budapest).date_naive();
        let (status, summary) = get(
            &self.client,
            &self.base,
            &self.quality_manager,
            &format!("/api/v1/stats/summary?period=day&from={today}&to={today}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        counts.push(summary["rows"][0]["received"].as_i64().unwrap_or(0));
        counts
    }
}

/// One event a projection cannot apply stops that projection on every instance; readiness is
/// about the store, so the instance stays ready ("degraded"), takes intake, and says which
/// projection stopped and why.
pub async fn a_projection_stopped_on_an_event_leaves_the_instance_ready(app: TestApp) {
    assert_eq!(app.create_ticket().await.status, StatusCode::CREATED);
    let stream = format!("ticket-{}", uuid::Uuid::new_v4());
    app.execute_sql(
        &format!(
            "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, occurred_at, recorded_at, \
             actor, correlation_id, payload) VALUES (randomblob(16), '{stream}', 1, 'Received', 1, 0, 0, \
             '{{\"kind\": \"system\", \"name\": \"test\"}}', randomblob(16), '{{\"not\": \"a report\"}}')"
        ),
        // As an append: under the store's append lock, taken before the transaction id.
        &format!(
            "DO $$ BEGIN PERFORM pg_advisory_xact_lock_shared(1953063787, hashtext(current_schema()) & 2147483647); \
             INSERT INTO events (position, event_id, stream_id, version, event_type, schema_version, occurred_at, \
             actor, correlation_id, payload) VALUES (pg_current_xact_id()::text::bigint << 16, gen_random_uuid(), \
             '{stream}', 1, 'Received', 1, now(), '{{\"kind\": \"system\", \"name\": \"test\"}}', gen_random_uuid(), \
             '{{\"not\": \"a report\"}}'); END $$"
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
        let stopped = ready.body["projections"].as_array().unwrap().iter().any(|p| p["failed"].is_string());
        if stopped {
            break ready;
        }
        assert!(Instant::now() < deadline, "no projection stopped on the damaged event: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status, StatusCode::OK, "one bad event must not take the instance out: {}", ready.body);
    assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
    assert_eq!(ready.body["store"], "ok");
    let failed = ready.body["projections"].as_array().unwrap().iter().find(|p| p["failed"].is_string()).unwrap();
    assert!(failed["failed"].as_str().unwrap().contains("Received"), "names the event: {failed}");
    assert_eq!(app.create_ticket().await.status, StatusCode::CREATED, "intake goes on");
}

/// A transaction held open for 30 s in another database of the PostgreSQL server (another
/// application's session idle in transaction) does not stall this service: new tickets reach
/// the queue within a second all along. (SQLite has no such thing: it passes trivially.)
pub async fn a_transaction_open_elsewhere_on_the_server_does_not_stall_the_service(app: TestApp) {
    use sqlx::Connection;
    let other_database = app.is_postgres().then(|| {
        let url = std::env::var("TICKETD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let (server, _) = url.rsplit_once('/').unwrap();
        format!("{server}/postgres")
    });
    let mut held = match &other_database {
        Some(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
            let _: String =
                sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut connection).await.unwrap();
            Some(connection)
        }
        None => None,
    };
    let started = Instant::now();
    let mut lags = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let created = app.create_ticket().await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let sent = Instant::now();
        loop {
            let page = app.get("/api/v1/queues/new?limit=200", &app.agent).await;
            let items = page.body["items"].as_array().cloned().unwrap_or_default();
            if items.iter().any(|item| item["id"] == id.as_str()) || sent.elapsed() > Duration::from_secs(5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lags.push(sent.elapsed());
        let ready = app.request(Method::GET, "/readyz", None, &[], None).await;
        assert_eq!(ready.body["oldest_append_in_flight"], Value::Null, "{}", ready.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(connection) = held.as_mut() {
        sqlx::query("ROLLBACK").execute(connection).await.unwrap();
    }
    let worst = lags.iter().max().copied().unwrap_or_default();
    assert!(lags.len() >= 20, "{} tickets in 30 s", lags.len());
    assert!(worst < Duration::from_secs(1), "a new ticket took {worst:?} to reach the queue (all: {lags:?})");
}

/// A command that names managed data the registry does not hold — a division, a contract, a
/// member of staff once the staff directory is kept — is refused with a 422 that lists what the
/// registry does hold, and writes nothing.
pub async fn references_to_managed_data_must_be_in_the_registry(app: TestApp) {
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.act(&id, "acknowledge", json!({})).await.status, StatusCode::OK);
    let investigate = json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"});
    assert_eq!(app.act(&id, "investigate", investigate).await.status, StatusCode::OK);
    let version = app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.version();

    // No division registered at all, then two: an unknown one is refused and the known listed.
    let refused = app.act(&id, "escalate", json!({"division": "it-operations", "reason": "needs a fix"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_division"),
        "{}",
        refused.body
    );
    app.register_divisions(&["legal", "billing"]).await;
    let refused = app.act(&id, "escalate", json!({"division": "it-operations", "reason": "needs a fix"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_division"),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["known"], json!(["billing", "legal"]), "{}", refused.body);
    assert_eq!(refused.body["errors"][0]["field"], "division");
    assert!(refused.body["detail"].as_str().unwrap().contains("billing, legal"), "{}", refused.body);
    assert_eq!(app.get(&format!("/api/v1/tickets/{id}"), &app.agent).await.version(), version, "nothing written");
    let escalated = app.act(&id, "escalate", json!({"division": "legal", "reason": "contract question"})).await;
    assert_eq!(escalated.status, StatusCode::OK, "{}", escalated.body);

    // Contracts: at intake and when relinking.
    let mut body = intake_body(7);
    body["contract_id"] = json!("no-such-contract");
    let refused = app.create_ticket_with(body).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_contract"),
        "{}",
        refused.body
    );
    let refused = app.act(&id, "contract", json!({"contract_id": "no-such-contract"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_contract"),
        "{}",
        refused.body
    );

    // Staff: free names until the directory is kept, then only its members.
    assert_eq!(app.act(&id, "assign", json!({"assignee": "anyone"})).await.status, StatusCode::OK);
    let staff = json!({"email": "kata@example.hu"});
    let saved = app.request(Method::PUT, "/api/v1/staff/kata", Some(&app.admin), &[], Some(staff)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let refused = app.act(&id, "assign", json!({"assignee": "nobody"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_staff"),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["known"], json!(["kata"]));
    assert_eq!(app.act(&id, "assign", json!({"assignee": "kata"})).await.status, StatusCode::OK);
}

/// Every time the service shows comes from its one clock (`--clock-file` here): the ticket's
/// times, the events' `recorded_at`, `as_of`, the queue's age and business time left, a ticket's
/// SLA clocks, and the `Date:` of its mail.
pub async fn one_clock_for_every_time_the_service_shows(backend: crate::harness::Backend) {
    use chrono::{DateTime, Utc};
    let Some(app) =
        crate::harness::spawn_app_with(backend, &[("TICKETD_MAIL", "files"), ("TICKETD_CLOCK_FILE", "{dir}/now")])
            .await
    else {
        return;
    };
    let set_clock = |now: &str| std::fs::write(app.dir().join("now"), now).unwrap();
    // Monday 2 March 2026, 10:00 in Budapest; first contact within 8 business hours.
    set_clock("2026-03-02T09:00:00Z");
    let terms = json!({"customer": "Mindenki", "sla": {"first_contact_minutes": 480}});
    let saved = app.request(Method::PUT, "/api/v1/contracts/general", Some(&app.admin), &[], Some(terms)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let default = json!({"contract_id": "general"});
    let set = app.request(Method::PUT, "/api/v1/default-contract", Some(&app.admin), &[], Some(default)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let created = app.create_ticket().await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["received_at"], "2026-03-02T09:00:00Z", "{}", created.body);
    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.auditor).await;
    let received = &history.body["events"][0];
    assert_eq!(
        (received["occurred_at"].as_str(), received["recorded_at"].as_str()),
        (Some("2026-03-02T09:00:00Z"), Some("2026-03-02T09:00:00Z")),
        "{received}"
    );
    // The confirmation mail is dated by the same clock.
    let outbox = app.dir().join("outbox");
    let dates = loop {
        let dates: Vec<i64> = std::fs::read_dir(&outbox)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|bytes| {
                        mail_parser::MessageParser::default()
                            .parse(&bytes)
                            .and_then(|m| m.date().map(|d| d.to_timestamp()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !dates.is_empty() {
            break dates;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let clock = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().timestamp();
    assert!(dates.iter().all(|d| *d == clock), "mail dated {dates:?}, the clock says {clock}");

    // As it stood: at the shown received_at it is there, a second before it is not.
    let at = app.get(&format!("/api/v1/tickets/{id}?as_of=2026-03-02T09:00:00Z"), &app.agent).await;
    assert_eq!(at.status, StatusCode::OK, "{}", at.body);
    let before = app.get(&format!("/api/v1/tickets/{id}?as_of=2026-03-02T08:59:59Z"), &app.agent).await;
    assert_eq!(before.status, StatusCode::NOT_FOUND, "{}", before.body);

    // An hour later by the clock: age and business time left follow it (10:00 + 8 business
    // hours = Tuesday 10:00; at 11:00 that leaves 5 h today and 2 h tomorrow).
    set_clock("2026-03-02T10:00:00Z");
    let item = loop {
        let page = app.get("/api/v1/queues/all-open", &app.agent).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        if let Some(item) = items.into_iter().find(|i| i["id"] == id.as_str() && i["business_seconds_left"].is_i64()) {
            break item;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(item["age_seconds"], 3600, "{item}");
    assert_eq!(item["business_seconds_left"], 7 * 3600, "{item}");
    let sla = app.get(&format!("/api/v1/tickets/{id}/sla"), &app.agent).await;
    let first_contact = sla.body.as_array().unwrap().iter().find(|c| c["target"] == "first_contact").cloned();
    let first_contact = first_contact.unwrap_or_else(|| panic!("{}", sla.body));
    assert_eq!(first_contact["business_seconds_left"], 7 * 3600, "{first_contact}");
    let _: DateTime<Utc> = first_contact["due_at"].as_str().unwrap().parse().unwrap();
}
