//! `--console`: the staff console's pages beside the JSON API for the same data, server time
//! as one sequential keep-alive client sees it, against a real `ticketd serve` (the release
//! binary beside this one) over a store of `--console-tickets` tickets (default 100,000).
//!
//! The store: the `--projections` generator's history (`projections.rs`: ~25% complaints, the
//! workflow decided by the domain) over `--console-days` days (by default 180 days per 100,000
//! tickets, so that a realistic few thousand stay open), plus one more ticket of 200 events
//! (Receive, Acknowledge, Investigate as a complaint, then 197 notes) through `TicketService`.
//! Then `ticketd serve` starts on it, its read models catch up from the log (timed:
//! `console_catch_up`), a staff account signs in and an agent token is created.
//!
//! Measured, interleaved round by round (each round one of each, in this order), after a
//! warm-up of `--console-warmup` rounds, over `--console-requests` rounds:
//! - `console_queue_page`: `GET /console/queues/all-open?category=complaint` (50 rows) beside
//!   `api_queue_page`: `GET /api/v1/queues/all-open?category=complaint&limit=50`;
//! - `console_queue_rows`: the same console page's `?fragment=rows` (only the table's body: no
//!   navigation counts, saved views, filters or layout), to tell the query from the page;
//! - `console_ticket_page`: `GET /console/tickets/{n}` of the 200-event ticket beside
//!   `api_ticket_and_events`: `GET /api/v1/tickets/{n}` then `GET /api/v1/tickets/{n}/events`
//!   (the sum of the two; each alone as `api_ticket` and `api_ticket_events`).
//!
//! - `console_insights_page`: the quality dashboard over the whole history by month,
//!   `console_insights_drill`: the list behind its middle month's received bar, and
//!   `console_history_page`: the replay view of the 200-event ticket (with its proof checked
//!   against a signed checkpoint: the server runs with a ledger key), both as an admin.
//!
//! The console lines carry `p99_ratio_to_api` and `target_met`: console p99 ≤ 2 × API p99 and
//! console p99 < 30 ms; the dashboard's and its drill-down's p99 < 150 ms, the replay view's
//! < 30 ms.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use event_store::{Database, SharedStore};
use hdrhistogram::Histogram;
use serde_json::json;
use ticket_app::{CommandContext, ServiceOptions, SystemClock, TicketService};
use ticket_domain::TicketCommand;
use ticket_domain::sample;
use ticket_domain::vocabulary::{Category, TicketId};

use crate::{Measurement, agent, histogram, projections, ticketd_binary};

/// The console's target: p99 at most this many times the API's, and below `TARGET_P99_MS`.
const TARGET_RATIO: f64 = 2.0;
const TARGET_P99_MS: f64 = 30.0;
/// Events of the long ticket.
const LONG_TICKET_EVENTS: u64 = 200;
/// The queue and filter measured (every backend; a full page of 50 is checked).
const QUEUE_FILTER: &str = "all-open?category=complaint";
/// The queue measured when too few complaints are open for a full page (a long history keeps
/// only its last days open): the whole history in received order, filtered by channel.
const QUEUE_FILTER_LONG: &str = "all?channel=phone";
const STAFF_NAME: &str = "bench";
const STAFF_PASSWORD: &str = "bench-console-password";
/// Signs in for the quality dashboard and the replay view (admins read both).
const ADMIN_NAME: &str = "benchadmin";
/// The dashboard's target: p99 server time below this (issue: 150 ms over two years).
const INSIGHTS_P99_MS: f64 = 150.0;
/// The replay view's target for the 200-event ticket.
const HISTORY_P99_MS: f64 = 30.0;

pub struct ConsoleArgs {
    pub tickets: usize,
    pub days: Option<i64>,
    pub requests: usize,
    pub warmup: usize,
}

/// The history's span by default: 180 days per 100,000 tickets (~555 a day).
fn days_of(args: &ConsoleArgs) -> i64 {
    args.days.unwrap_or(((args.tickets as i64 * 180 + 99_999) / 100_000).max(7))
}

/// The highest position in the log.
async fn head(database: &Database) -> anyhow::Result<i64> {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    Ok(match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await?,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}

/// The whole console benchmark: fills `store` (which `database_url` names for `ticketd`), serves
/// it and measures. `work_dir`: for the server's outbox and attachment folders.
pub async fn bench(
    backend: &'static str,
    args: &ConsoleArgs,
    store: SharedStore,
    database: Database,
    database_url: &str,
    work_dir: &Path,
) -> anyhow::Result<()> {
    let days = days_of(args);
    let started = Instant::now();
    let history = projections::generate(args.tickets, days);
    let generated = started.elapsed();
    let events = history.len();
    let started = Instant::now();
    projections::load(&store, args.tickets, &history).await?;
    drop(history);
    // The long ticket, through the service (the newest ticket, received now).
    let service = TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default());
    let context = CommandContext::new(agent());
    let long_id = TicketId::new();
    let long_number = args.tickets as u64 + 1;
    service.execute(long_id, None, TicketCommand::Receive(sample::receive(long_number)), &context).await?;
    service.execute(long_id, None, sample::acknowledge(), &context).await?;
    service.execute(long_id, None, sample::investigate(Category::Complaint), &context).await?;
    while service.load(long_id).await?.version() < LONG_TICKET_EVENTS {
        service.execute(long_id, None, sample::note(), &context).await?;
    }
    anyhow::ensure!(service.load(long_id).await?.version() == LONG_TICKET_EVENTS, "the long ticket overshot");
    let loaded = started.elapsed();
    let log_head = head(&database).await?;
    drop((service, store, database));
    println!(
        "{}",
        json!({"backend": backend, "workload": "console_history_load", "tickets": args.tickets + 1, "days": days,
               "events": events as u64 + LONG_TICKET_EVENTS, "log_head": log_head, "generate_seconds": generated.as_secs_f64(),
               "append_seconds": loaded.as_secs_f64()})
    );

    let binary = ticketd_binary()?;
    let cli = |arguments: &[&str], stdin: Option<&str>| -> anyhow::Result<String> {
        let mut child = Command::new(&binary)
            .args(arguments)
            .env("TICKETD_DATABASE_URL", database_url)
            .env("TICKETD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(text) = stdin {
            child.stdin.take().context("stdin")?.write_all(text.as_bytes())?;
        }
        drop(child.stdin.take());
        let output = child.wait_with_output()?;
        anyhow::ensure!(
            output.status.success(),
            "ticketd {} failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    };
    cli(
        &["staff", "put", STAFF_NAME, "--email", "bench@example.com", "--role", "agent", "--password-stdin"],
        Some(&format!("{STAFF_PASSWORD}\n")),
    )?;
    let token = cli(&["token", "create", "--role", "agent", "--name", "benchapi"], None)?;
    let admin_token = cli(&["token", "create", "--role", "admin", "--name", "benchadminapi"], None)?;
    cli(
        &["staff", "put", ADMIN_NAME, "--email", "bench-admin@example.com", "--role", "admin", "--password-stdin"],
        Some(&format!("{STAFF_PASSWORD}\n")),
    )?;

    // A ledger key: the replay view checks the ticket's proof against a signed checkpoint.
    let ledger_key = work_dir.join("ledger.key");
    cli(&["ledger", "init-key", "--out", &ledger_key.display().to_string(), "--name", "bench.example/ledger"], None)?;

    let started = Instant::now();
    let mut server = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TICKETD_DATABASE_URL", database_url)
        .env("TICKETD_LOG", "warn")
        .env("TICKETD_MAIL", "off")
        .env("TICKETD_OUTBOX_DIR", work_dir.join("outbox"))
        .env("TICKETD_ATTACHMENTS_DIR", work_dir.join("attachments"))
        // The history's open tickets are long overdue: no SLA round writes warnings and
        // breaches in the middle of the measurement (the first round runs at start, before
        // the clocks' read model has caught up).
        .env("TICKETD_SLA_CHECK_SECONDS", "3600")
        .env("TICKETD_LEDGER_KEY", &ledger_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result =
        measure(backend, args, &mut server, started, log_head, (&token, &admin_token), long_number, database_url, days)
            .await;
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    result
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    cookie: String,
}

impl Client {
    /// One GET, timed to the end of its body; refuses anything but 200.
    async fn get(&self, path: &str, api: bool) -> anyhow::Result<(Duration, Vec<u8>)> {
        let request = self.http.get(format!("{}{path}", self.base));
        let request = if api { request.bearer_auth(&self.token) } else { request.header("cookie", &self.cookie) };
        let start = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = start.elapsed();
        anyhow::ensure!(status == reqwest::StatusCode::OK, "GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        Ok((elapsed, body.to_vec()))
    }
}

/// One measured request kind.
struct Timed {
    workload: &'static str,
    path: String,
    latency: Histogram<u64>,
    elapsed: Duration,
    bytes: usize,
    first: Duration,
}

impl Timed {
    fn new(workload: &'static str, path: &str, first: Duration) -> Self {
        Timed { workload, path: path.to_owned(), latency: histogram(), elapsed: Duration::ZERO, bytes: 0, first }
    }
    fn record(&mut self, took: Duration, bytes: usize) {
        self.latency.record(took.as_micros().max(1) as u64).ok();
        self.elapsed += took;
        self.bytes = bytes;
    }
    fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The server process's peak resident memory (Linux: `VmHWM` in `/proc/<pid>/status`).
pub fn server_peak_rss_mb(server: &Child) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", server.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn measure(
    backend: &'static str,
    args: &ConsoleArgs,
    server: &mut Child,
    started: Instant,
    log_head: i64,
    (token, admin_token): (&str, &str),
    long_number: u64,
    database_url: &str,
    days: i64,
) -> anyhow::Result<()> {
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let base = line.trim().strip_prefix("listening on ").context("the server's address")?.to_owned();
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(1).build()?;

    // The read models catch up from the log.
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let projections = loop {
        let ready: serde_json::Value = http.get(format!("{base}/readyz")).send().await?.json().await?;
        let list = ready["projections"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = list.iter().find(|p| !p["failed"].is_null()) {
            anyhow::bail!("a projection failed while catching up: {failed}");
        }
        if !list.is_empty() && list.iter().all(|p| p["position"].as_i64().unwrap_or(0) >= log_head) {
            break list;
        }
        anyhow::ensure!(Instant::now() < deadline, "the read models did not catch up in 30 minutes: {ready}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "{}",
        json!({"backend": backend, "workload": "console_catch_up", "log_head": log_head,
               "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
               "projections": projections.iter().map(|p| p["name"].clone()).collect::<Vec<_>>()})
    );

    // PostgreSQL plans from table statistics, which autovacuum keeps; the servers of these
    // machines run with autovacuum off, so do once what it would do after a load this size
    // (without statistics the queue reads every ticket: 58 ms instead of under 1 ms).
    if database_url.starts_with("postgres") {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(database_url).await?;
        // Only this run's tables (the URL's search_path names its schema): the server is shared.
        sqlx::query("ANALYZE events, ticket_view, sla_clocks, ticket_index").execute(&mut connection).await?;
    }

    // Sign in (no Origin header: a client that is not a browser).
    let sign_in = |name: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let response = http
                .post(format!("{base}/console/login"))
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(format!("name={name}&password={STAFF_PASSWORD}&next=%2Fconsole"))
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == reqwest::StatusCode::SEE_OTHER,
                "sign-in answered {}",
                response.status()
            );
            let cookie = response
                .headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.contains("ticketd_session="))
                .and_then(|v| v.split(';').next())
                .context("the sign-in set no session cookie")?
                .to_owned();
            anyhow::Ok(cookie)
        }
    };
    let cookie = sign_in(STAFF_NAME).await?;
    let admin_cookie = sign_in(ADMIN_NAME).await?;
    let client = Client { http: http.clone(), base: base.clone(), token: token.to_owned(), cookie };
    let admin = Client { http, base, token: token.to_owned(), cookie: admin_cookie };

    // What the pages show, checked once (and the first, cold, answer of each timed).
    let open_complaints = {
        let (_, page) = client.get(&format!("/api/v1/queues/{QUEUE_FILTER}&limit=50"), true).await?;
        serde_json::from_slice::<serde_json::Value>(&page)?["items"].as_array().map_or(0, Vec::len)
    };
    let queue_filter = if open_complaints == 50 { QUEUE_FILTER } else { QUEUE_FILTER_LONG };
    let console_queue = format!("/console/queues/{queue_filter}");
    let console_rows = format!("/console/queues/{queue_filter}&fragment=rows");
    let api_queue = format!("/api/v1/queues/{queue_filter}&limit=50");
    let console_ticket = format!("/console/tickets/{long_number}");
    let api_ticket = format!("/api/v1/tickets/{long_number}");
    let api_events = format!("/api/v1/tickets/{long_number}/events");
    let (first, page) = client.get(&console_queue, false).await?;
    let rows = String::from_utf8_lossy(&page).matches("<tr data-number=").count();
    anyhow::ensure!(rows == 50, "the console queue page shows {rows} rows, not 50: pick another filter");
    let mut timed_console_queue = Timed::new("console_queue_page", &console_queue, first);
    let (first, page) = client.get(&api_queue, true).await?;
    let items = serde_json::from_slice::<serde_json::Value>(&page)?["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(items == 50, "the API's queue page has {items} rows, not 50");
    let mut timed_api_queue = Timed::new("api_queue_page", &api_queue, first);
    let (first, _) = client.get(&console_rows, false).await?;
    let mut timed_console_rows = Timed::new("console_queue_rows", &console_rows, first);
    let (first, page) = client.get(&console_ticket, false).await?;
    let entries = String::from_utf8_lossy(&page).matches("id=\"event-").count();
    anyhow::ensure!(entries == LONG_TICKET_EVENTS as usize, "the console ticket page shows {entries} events");
    let mut timed_console_ticket = Timed::new("console_ticket_page", &console_ticket, first);
    let (first_ticket, _) = client.get(&api_ticket, true).await?;
    let (first_events, page) = client.get(&api_events, true).await?;
    let events = serde_json::from_slice::<serde_json::Value>(&page)?["events"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(events == LONG_TICKET_EVENTS as usize, "the API shows {events} events");
    let mut timed_api_ticket = Timed::new("api_ticket", &api_ticket, first_ticket);
    let mut timed_api_events = Timed::new("api_ticket_events", &api_events, first_events);
    let mut timed_api_both =
        Timed::new("api_ticket_and_events", &format!("{api_ticket} + {api_events}"), first_ticket + first_events);
    // The quality dashboard over the whole history, by month; the replay view of the long ticket.
    let last_day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("a day") + chrono::Days::new((days - 1) as u64);
    let insights = format!("/console/insights?from=2024-01-01&to={last_day}&bucket=month");
    let history = format!("/console/tickets/{long_number}/history");
    let (first, page) = admin.get(&insights, false).await?;
    let charts = String::from_utf8_lossy(&page).matches("<svg class=\"chart\"").count();
    anyhow::ensure!(charts >= 9, "the dashboard shows {charts} charts");
    let mut timed_insights = Timed::new("console_insights_page", &insights, first);
    // A drill-down: the list behind the middle month's received bar.
    let drills: Vec<String> = String::from_utf8_lossy(&page)
        .split("href=\"/console/insights/volume/tickets?")
        .skip(1)
        .map(|rest| {
            format!("/console/insights/volume/tickets?{}", rest.split('"').next().unwrap_or("").replace("&amp;", "&"))
        })
        .filter(|href| href.contains("column=received"))
        .collect();
    let drill = drills.get(drills.len() / 2).cloned().context("the dashboard has no received bar to drill into")?;
    let (first, page) = admin.get(&drill, false).await?;
    anyhow::ensure!(String::from_utf8_lossy(&page).contains("id=\"drill-list\""), "the drill-down shows no list");
    let mut timed_drill = Timed::new("console_insights_drill", &drill, first);
    // The replay view proves against the latest signed checkpoint: sign one over the whole log.
    let signed =
        admin.http.post(format!("{}/api/v1/audit/checkpoint", admin.base)).bearer_auth(admin_token).send().await?;
    anyhow::ensure!(signed.status().is_success(), "signing a checkpoint answered {}", signed.status());
    let (first, page) = admin.get(&history, false).await?;
    let rows = String::from_utf8_lossy(&page).matches(" data-version=\"").count();
    anyhow::ensure!(rows == LONG_TICKET_EVENTS as usize, "the replay view shows {rows} events");
    anyhow::ensure!(
        String::from_utf8_lossy(&page).contains("data-proven=\"true\""),
        "the replay view does not show the ticket proven"
    );
    let mut timed_history = Timed::new("console_history_page", &history, first);
    let (_, counts) = client.get("/console/counts", false).await?;
    let open = serde_json::from_slice::<serde_json::Value>(&counts)?["all-open"].as_i64();

    // Warm-up, then the measured rounds: one of each request per round, in this order.
    for round in 0..args.warmup + args.requests {
        let measured = round >= args.warmup;
        let (took, body) = client.get(&console_queue, false).await?;
        if measured {
            timed_console_queue.record(took, body.len());
        }
        let (took, body) = client.get(&api_queue, true).await?;
        if measured {
            timed_api_queue.record(took, body.len());
        }
        let (took, body) = client.get(&console_rows, false).await?;
        if measured {
            timed_console_rows.record(took, body.len());
        }
        let (took, body) = client.get(&console_ticket, false).await?;
        if measured {
            timed_console_ticket.record(took, body.len());
        }
        let (took, body) = admin.get(&insights, false).await?;
        if measured {
            timed_insights.record(took, body.len());
        }
        let (took, body) = admin.get(&history, false).await?;
        if measured {
            timed_history.record(took, body.len());
        }
        let (took, body) = admin.get(&drill, false).await?;
        if measured {
            timed_drill.record(took, body.len());
        }
        let (ticket_took, ticket_body) = client.get(&api_ticket, true).await?;
        let (events_took, events_body) = client.get(&api_events, true).await?;
        if measured {
            timed_api_ticket.record(ticket_took, ticket_body.len());
            timed_api_events.record(events_took, events_body.len());
            timed_api_both.record(ticket_took + events_took, ticket_body.len() + events_body.len());
        }
    }

    let rss = server_peak_rss_mb(server);
    let print = |timed: &Timed, api: Option<&Timed>| {
        let mut extra = json!({
            "requests": args.requests,
            "warmup": args.warmup,
            "path": timed.path,
            "bytes": timed.bytes,
            "first_ms": ms(timed.first),
            "tickets": args.tickets + 1,
            "open_tickets": open,
            "peak_rss_is": "server",
        });
        let fields = extra.as_object_mut().expect("an object");
        if timed.workload.contains("queue") {
            fields.insert("filter".into(), json!(queue_filter));
            fields.insert("rows".into(), json!(50));
        } else {
            fields.insert("events".into(), json!(LONG_TICKET_EVENTS));
        }
        if let Some(api) = api {
            let ratio = timed.p99_ms() / api.p99_ms();
            let met = ratio <= TARGET_RATIO && timed.p99_ms() < TARGET_P99_MS;
            fields.insert("compared_with".into(), json!(api.workload));
            fields.insert("api_p99_ms".into(), json!(api.p99_ms()));
            fields.insert("p99_ratio_to_api".into(), json!((ratio * 1000.0).round() / 1000.0));
            fields.insert("target".into(), json!(format!("p99 <= {TARGET_RATIO} x API p99 and < {TARGET_P99_MS} ms")));
            fields.insert("target_met".into(), json!(met));
        }
        let measurement = Measurement {
            backend,
            workload: timed.workload,
            writers: 1,
            operations: args.requests,
            elapsed: timed.elapsed,
            latency_us: Some(timed.latency.clone()),
            peak_rss_mb: rss,
            raw_ops_per_s: None,
            extra,
        };
        measurement.print();
        if let Some(api) = api {
            println!(
                "{backend:<9} {:<22} p99 {:.3} ms = {:.2} x {} p99 {:.3} ms: target {}",
                timed.workload,
                timed.p99_ms(),
                timed.p99_ms() / api.p99_ms(),
                api.workload,
                api.p99_ms(),
                if timed.p99_ms() / api.p99_ms() <= TARGET_RATIO && timed.p99_ms() < TARGET_P99_MS {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    };
    print(&timed_api_queue, None);
    print(&timed_console_queue, Some(&timed_api_queue));
    print(&timed_console_rows, Some(&timed_api_queue));
    print(&timed_api_ticket, None);
    print(&timed_api_events, None);
    print(&timed_api_both, None);
    print(&timed_console_ticket, Some(&timed_api_both));
    for (timed, target) in
        [(&timed_insights, INSIGHTS_P99_MS), (&timed_drill, INSIGHTS_P99_MS), (&timed_history, HISTORY_P99_MS)]
    {
        let met = timed.p99_ms() < target;
        Measurement {
            backend,
            workload: timed.workload,
            writers: 1,
            operations: args.requests,
            elapsed: timed.elapsed,
            latency_us: Some(timed.latency.clone()),
            peak_rss_mb: rss,
            raw_ops_per_s: None,
            extra: json!({
                "requests": args.requests, "warmup": args.warmup, "path": timed.path, "bytes": timed.bytes,
                "first_ms": ms(timed.first), "tickets": args.tickets + 1, "days": days,
                "events": if timed.workload == "console_history_page" { json!(LONG_TICKET_EVENTS) } else { json!(null) },
                "target": format!("p99 < {target} ms"), "target_met": met, "peak_rss_is": "server",
            }),
        }
        .print();
        println!(
            "{backend:<9} {:<22} p99 {:.3} ms (first {:.3} ms): target p99 < {target} ms {}",
            timed.workload,
            timed.p99_ms(),
            ms(timed.first),
            if met { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
