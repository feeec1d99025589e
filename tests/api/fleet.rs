//! Several instances on one PostgreSQL: one leader per background job, a crashed leader's jobs
//! taken over within 15 s, a stopped one's at once, and nothing lost or doubled under load.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backend, spawn_app_with};

/// Every job that runs under a lease with mail on and no ledger key.
const JOBS: [&str; 9] = [
    "ledger",
    "mail_dispatcher",
    "mail_outbox",
    "retention",
    "sla_clocks",
    "sla_scheduler",
    "statistics",
    "stats_marks",
    "ticket_index",
];

const SCRAPE_TOKEN: &str = "fleet-scrape-token";

/// One instance's `/metrics`: each sample line's name-and-labels → value.
async fn scrape(client: &reqwest::Client, base: &str) -> HashMap<String, f64> {
    let answer = client.get(format!("{base}/metrics")).bearer_auth(SCRAPE_TOKEN).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let text = answer.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

async fn readyz(client: &reqwest::Client, base: &str) -> Option<Value> {
    let answer = client.get(format!("{base}/readyz")).timeout(Duration::from_secs(5)).send().await.ok()?;
    answer.json().await.ok()
}

/// Who holds each job's unexpired lease, as the database says (through a live instance).
async fn holders(client: &reqwest::Client, base: &str) -> BTreeMap<String, String> {
    let Some(ready) = readyz(client, base).await else { return BTreeMap::new() };
    ready["leases"]["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["expires_in_ms"].as_i64().unwrap_or(-1) > 0)
        .map(|j| (j["job"].as_str().unwrap().to_owned(), j["holder"].as_str().unwrap().to_owned()))
        .collect()
}

/// Waits until every job (and `ticket_view`) is held by one of `live`; the time it took.
async fn every_job_held_by(client: &reqwest::Client, base: &str, live: &[String], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let held = holders(client, base).await;
        let all = JOBS.iter().chain(["ticket_view"].iter()).all(|job| held.get(*job).is_some_and(|h| live.contains(h)));
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the jobs were not all taken over within {within:?}: {held:?} (live: {live:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Load {
    created: Vec<(String, String)>,
    failures: Vec<String>,
    commands: usize,
}

/// Creates tickets and adds notes, spreading the commands over the instances still up; a
/// command whose instance goes away is repeated on another with the same Idempotency-Key.
/// The instances a client may send to: (address, up).
type Pool = Arc<std::sync::RwLock<Vec<(String, bool)>>>;

fn set_up(pool: &Pool, base: &str, up: bool) {
    for entry in pool.write().unwrap().iter_mut().filter(|(b, _)| b == base) {
        entry.1 = up;
    }
}

async fn load(client: reqwest::Client, pool: Pool, token: String, stop: Arc<AtomicBool>) -> Load {
    let mut result = Load { created: Vec::new(), failures: Vec::new(), commands: 0 };
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let email = format!("fleet{i}@example.hu");
        let intake = json!({
            "channel": "phone",
            "reporter": {"name": "Flotta Teszt", "email": email},
            "subject": format!("Fleet {i}"),
            "message": "Több példányon is működik?",
        });
        let key = uuid::Uuid::new_v4().to_string();
        let Some((status, body)) = send(&client, &pool, i, &token, "/api/v1/tickets", &key, intake).await else {
            result.failures.push(format!("intake {i}: no instance answered"));
            continue;
        };
        result.commands += 1;
        if status != StatusCode::CREATED {
            result.failures.push(format!("intake {i}: {status} {body}"));
            continue;
        }
        let id = body["id"].as_str().unwrap().to_owned();
        result.created.push((id.clone(), email));
        let key = uuid::Uuid::new_v4().to_string();
        let note = json!({"body": format!("note {i}")});
        match send(&client, &pool, i + 1, &token, &format!("/api/v1/tickets/{id}/notes"), &key, note).await {
            Some((status, _)) if status.is_success() || status == StatusCode::CONFLICT => result.commands += 1,
            Some((status, body)) => result.failures.push(format!("note {i}: {status} {body}")),
            None => result.failures.push(format!("note {i}: no instance answered")),
        }
    }
    result
}

async fn send(
    client: &reqwest::Client,
    pool: &Pool,
    start: usize,
    token: &str,
    path: &str,
    key: &str,
    body: Value,
) -> Option<(StatusCode, Value)> {
    for attempt in 0..60 {
        let live: Vec<String> = pool.read().unwrap().iter().filter(|(_, up)| *up).map(|(b, _)| b.clone()).collect();
        if live.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let sent = client
            .post(format!("{}{path}", live[(start + attempt) % live.len()]))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let status = answer.status();
                // An instance draining or the request still in flight elsewhere: repeat.
                if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT {
                    let body: Value = answer.json().await.unwrap_or_default();
                    if status == StatusCode::CONFLICT && body["code"] != "request_in_progress" {
                        return Some((status, body));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return Some((status, answer.json().await.unwrap_or_default()));
            }
            // The instance went away mid-request: the same key elsewhere.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

pub async fn three_instances_lead_each_job_once_and_take_over_from_a_killed_one(backend: Backend) {
    // A request cut off by a crash is taken over by its repeat after 2 s.
    // Each instance named as if on a host of its own: a crashed one's leases move only when
    // they expire (a run of the same name would take them back at once).
    let env = [
        ("TICKETD_MAIL", "files"),
        ("TICKETD_IDEMPOTENCY_STALE_SECONDS", "2"),
        ("TICKETD_INSTANCE_NAME", "pod-a"),
        ("TICKETD_METRICS_TOKEN", SCRAPE_TOKEN),
    ];
    let Some(mut app) = spawn_app_with(backend, &env).await else { return };
    assert!(app.is_postgres(), "instances share a store on PostgreSQL only");
    let mut second = app.start_sibling_with(&[("TICKETD_INSTANCE_NAME", "pod-b")]);
    let mut third = app.start_sibling_with(&[("TICKETD_INSTANCE_NAME", "pod-c")]);
    let bases = vec![app.base.clone(), second.base.clone(), third.base.clone()];
    let client = app.client.clone();
    // Each instance's holder name, and every job led by exactly one of them.
    let mut names = Vec::new();
    for base in &bases {
        let ready = readyz(&client, base).await.expect("each instance answers");
        names.push(ready["leases"]["holder"].as_str().expect("PostgreSQL instances have a holder name").to_owned());
    }
    every_job_held_by(&client, &bases[0], &names, Duration::from_secs(15)).await;
    let mut led_by: HashMap<String, usize> = HashMap::new();
    for base in &bases {
        let ready = readyz(&client, base).await.unwrap();
        for job in ready["leases"]["leading"].as_array().unwrap() {
            *led_by.entry(job.as_str().unwrap().to_owned()).or_default() += 1;
        }
        for projection in ready["projections"].as_array().unwrap() {
            let leads = ready["leases"]["leading"].as_array().unwrap().iter().any(|j| j == &projection["name"]);
            assert_eq!(projection["leading"].as_bool(), Some(leads), "{projection}");
        }
    }
    for job in JOBS.iter().chain(["ticket_view"].iter()) {
        assert_eq!(led_by.get(*job), Some(&1), "{job} has exactly one leader: {led_by:?}");
    }

    // /metrics says who leads: 1 on exactly one instance for each job; no token, no metrics.
    let mut scraped = Vec::new();
    for base in &bases {
        scraped.push(scrape(&client, base).await);
    }
    for job in JOBS {
        let key = format!("ticketd_job_leader{{job=\"{job}\"}}");
        let leaders: f64 = scraped.iter().map(|m| m.get(&key).copied().unwrap_or(0.0)).sum();
        assert_eq!(leaders, 1.0, "{key} is 1 on exactly one instance");
    }
    let refused = client.get(format!("{}/metrics", bases[0])).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Load on all three.
    let pool: Pool = Arc::new(std::sync::RwLock::new(bases.iter().map(|b| (b.clone(), true)).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(client.clone(), pool.clone(), app.agent.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL the instance leading ticket_view: another takes every job over within 15 s.
    let held = holders(&client, &bases[0]).await;
    let victim = names.iter().position(|n| Some(n) == held.get("ticket_view")).expect("ticket_view has a leader");
    set_up(&pool, &bases[victim], false);
    let killed = Instant::now();
    match victim {
        0 => app.crash(),
        1 => second.kill(),
        _ => third.kill(),
    }
    let live: Vec<String> = (0..3).filter(|i| *i != victim).map(|i| names[i].clone()).collect();
    let observer = (0..3).find(|i| *i != victim).unwrap();
    every_job_held_by(&client, &bases[observer], &live, Duration::from_secs(15)).await;
    eprintln!("after SIGKILL every job moved in {:.1} s", killed.elapsed().as_secs_f64());
    // The lease moved in /metrics too: the survivors lead ticket_view once between them.
    let key = "ticketd_job_leader{job=\"ticket_view\"}";
    let mut leaders = 0.0;
    for i in (0..3).filter(|i| *i != victim) {
        leaders += scrape(&client, &bases[i]).await.get(key).copied().unwrap_or(0.0);
    }
    assert_eq!(leaders, 1.0, "{key} moved to one survivor");

    // SIGTERM the one now leading ticket_view: it drains and releases, taken over at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = holders(&client, &bases[observer]).await;
    let leader = names.iter().position(|n| Some(n) == held.get("ticket_view")).unwrap();
    set_up(&pool, &bases[leader], false);
    let stopped = Instant::now();
    match leader {
        0 => app.stop(),
        1 => second.terminate(),
        _ => third.terminate(),
    }
    let last = (0..3).find(|i| *i != victim && *i != leader).unwrap();
    every_job_held_by(&client, &bases[last], &[names[last].clone()], Duration::from_secs(5)).await;
    eprintln!("after SIGTERM every job moved in {:.1} s", stopped.elapsed().as_secs_f64());

    // Back to three, then a rolling restart of all three under load: each time a new instance
    // first, then the oldest stopped with SIGTERM (it drains, releases its leases, exits).
    let mut fresh: Vec<crate::harness::Sibling> = Vec::new();
    for name in ["pod-d", "pod-e"] {
        let sibling = app.start_sibling_with(&[("TICKETD_INSTANCE_NAME", name)]);
        pool.write().unwrap().push((sibling.base.clone(), true));
        fresh.push(sibling);
    }
    let mut replacements: Vec<crate::harness::Sibling> = Vec::new();
    for round in 0..3 {
        let sibling = app.start_sibling_with(&[("TICKETD_INSTANCE_NAME", &format!("pod-r{round}"))]);
        pool.write().unwrap().push((sibling.base.clone(), true));
        replacements.push(sibling);
        tokio::time::sleep(Duration::from_millis(700)).await;
        match round {
            0 => {
                set_up(&pool, &bases[last], false);
                match last {
                    0 => app.stop(),
                    1 => second.terminate(),
                    _ => third.terminate(),
                }
            }
            _ => {
                let mut old = fresh.remove(0);
                set_up(&pool, &old.base, false);
                old.terminate();
            }
        }
    }
    let mut live_names = Vec::new();
    for sibling in &replacements {
        let ready = readyz(&client, &sibling.base).await.expect("a replacement answers");
        live_names.push(ready["leases"]["holder"].as_str().unwrap().to_owned());
    }
    every_job_held_by(&client, &replacements[0].base, &live_names, Duration::from_secs(15)).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let load = loader.await.unwrap();
    assert!(load.failures.is_empty(), "commands failed: {:?}", load.failures);
    assert!(load.created.len() > 20, "the load created {} tickets", load.created.len());

    // Every acknowledged ticket is there, each confirmation sent exactly once.
    let base = replacements[0].base.clone();
    let outbox = app.dir().join("outbox");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mails = crate::mail::mails_in(&outbox);
        let mut per_address: HashMap<String, usize> = HashMap::new();
        for mail in &mails {
            *per_address.entry(mail.to.clone()).or_default() += 1;
        }
        let doubled: Vec<_> = per_address.iter().filter(|(_, n)| **n > 1).collect();
        assert!(doubled.is_empty(), "mails sent twice: {doubled:?}");
        if load.created.iter().all(|(_, email)| per_address.keys().any(|to| to.contains(email.as_str()))) {
            break;
        }
        assert!(Instant::now() < deadline, "not every ticket's confirmation was sent: {} mails", mails.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (id, _) in &load.created {
        let answer = client.get(format!("{base}/api/v1/tickets/{id}")).bearer_auth(&app.agent).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "ticket {id} is there");
    }
    // Each mail was handed to the transport once (a resend would show as a second attempt:
    // the files transport names a mail's file after its row, so a resend leaves no new file).
    let resent = app.query_count("SELECT count(*) FROM mail_outbox WHERE attempts > 1").await;
    assert_eq!(resent, 0, "no mail was sent twice");
    let acknowledged = app
        .query_count("SELECT count(*) FROM (SELECT stream_id FROM events WHERE event_type = 'Acknowledged' GROUP BY stream_id HAVING count(*) > 1) t")
        .await;
    assert_eq!(acknowledged, 0, "no ticket was acknowledged twice");

    // Every read model equals a rebuild from the log.
    let head = app.query_count("SELECT COALESCE(MAX(position), 0) FROM events").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind = app
            .query_count(&format!(
                "SELECT count(*) FROM projection_checkpoints WHERE name IN ('ticket_index', 'ticket_view', 'statistics', \
                 'stats_marks', 'sla_clocks') AND position < {head}"
            ))
            .await;
        if behind == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the read models did not catch up after the take-overs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the lag recovered: every read model at the log's head, in the last instance's metrics.
    let metrics = scrape(&client, &base).await;
    for projection in ["ticket_index", "ticket_view", "statistics", "stats_marks", "sla_clocks"] {
        let key = format!("ticketd_projection_behind{{projection=\"{projection}\"}}");
        assert_eq!(metrics.get(&key), Some(&0.0), "{key}");
    }
    assert!(
        metrics
            .keys()
            .any(|k| k.starts_with("ticketd_http_request_duration_seconds_bucket{") && k.contains("le=\"0.005\"")),
        "request durations are a histogram with buckets from 5 ms"
    );
    assert!(metrics.keys().any(|k| k.starts_with("ticketd_commands_total{") && k.contains("outcome=\"applied\"")));
    let live = crate::consistency::dumps(&app).await;
    for sibling in &mut replacements {
        sibling.terminate();
    }
    app.cli(&["rebuild"]);
    let rebuilt = crate::consistency::dumps(&app).await;
    for ((table, live), rebuilt) in crate::consistency::READ_MODEL_TABLES.iter().zip(&live).zip(&rebuilt) {
        assert_eq!(live, rebuilt, "{table}: what the instances built is not what a rebuild gives");
    }
}
