//! `--fleet`: one, two and three `ticketd serve` instances on one PostgreSQL.
//!
//! - `fleet_commands` (per instance count): `--fleet-connections` clients spread intake and a
//!   note per ticket over the instances for `--fleet-seconds`; commands/s, latency, and CPU per
//!   command — of the instances (`instance_cpu_ms_per_command`) and of the whole machine
//!   (`machine_cpu_ms_per_command`, PostgreSQL and this client included). On two cores the
//!   throughput stays flat with more instances: the machine, not one process, is the limit
//!   (every instance shares the same cores and the same database), and the background jobs
//!   run once whatever the count (one leader each).
//! - `fleet_failover` (three instances): `--fleet-failovers` times, the leader of
//!   `ticket_view` is SIGKILLed under load, and the time until the new leader's first batch
//!   (the read model's checkpoint moving again) is measured; p50/p99 over those. A new
//!   instance (of a new name) joins after each kill.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::{Measurement, cpu_seconds, histogram, ticketd_binary};

#[derive(Debug, Clone)]
pub struct FleetArgs {
    pub postgres_url: String,
    pub seconds: u64,
    pub connections: usize,
    pub failovers: usize,
}

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fleet {
    binary: std::path::PathBuf,
    url: String,
    kek: std::path::PathBuf,
    spawned: usize,
}

impl Fleet {
    fn spawn(&mut self) -> anyhow::Result<Instance> {
        self.spawned += 1;
        let mut child = Command::new(&self.binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TICKETD_DATABASE_URL", &self.url)
            .env("TICKETD_KEK_FILE", &self.kek)
            .env("TICKETD_MAIL", "off")
            .env("TICKETD_LOG", "error")
            .env("TICKETD_INSTANCE_NAME", format!("bench-{}", self.spawned))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let base = line.trim().strip_prefix("listening on ").context("ticketd printed no address")?.to_owned();
        Ok(Instance { child, base })
    }
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> Option<serde_json::Value> {
    let answer = client.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    answer.json().await.ok()
}

/// Clients sending intake + note over `bases` until `stop`; commands done, failures, latency.
fn load(
    bases: Arc<std::sync::RwLock<Vec<String>>>,
    token: String,
    connections: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>, Vec<tokio::task::JoinHandle<Histogram<u64>>>) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    let tasks = (0..connections)
        .map(|c| {
            let (bases, token, stop, done, failed, client) =
                (bases.clone(), token.clone(), stop.clone(), done.clone(), failed.clone(), client.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let base = {
                        let bases = bases.read().expect("bases");
                        bases[(c + i) % bases.len()].clone()
                    };
                    let started = Instant::now();
                    let intake = json!({
                        "channel": "phone",
                        "reporter": {"name": "Flotta Mérés", "email": format!("fleet{c}-{i}@example.hu")},
                        "subject": "Mérés",
                        "message": "Mérés több példányon.",
                    });
                    let Some(created) = post(&client, &base, &token, "/api/v1/tickets", intake).await else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    latency.record(started.elapsed().as_micros().max(1) as u64).ok();
                    done.fetch_add(1, Ordering::Relaxed);
                    let id = created["id"].as_str().unwrap_or_default().to_owned();
                    let started = Instant::now();
                    let note = json!({"body": "mérés"});
                    if post(&client, &base, &token, &format!("/api/v1/tickets/{id}/notes"), note).await.is_some() {
                        latency.record(started.elapsed().as_micros().max(1) as u64).ok();
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latency
            })
        })
        .collect();
    (done, failed, tasks)
}

/// The machine's busy CPU seconds (all cores) from `/proc/stat`.
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: f64 = fields.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy / 100.0
}

async fn ticket_view_position(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE((SELECT position FROM projection_checkpoints WHERE name = 'ticket_view'), 0)")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

async fn leader_of(client: &reqwest::Client, base: &str, job: &str) -> Option<String> {
    let ready: serde_json::Value = client.get(format!("{base}/readyz")).send().await.ok()?.json().await.ok()?;
    ready["leases"]["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["job"] == job && j["expires_in_ms"].as_i64().unwrap_or(-1) > 0)
        .and_then(|j| j["holder"].as_str().map(str::to_owned))
}

async fn holder_of(client: &reqwest::Client, base: &str) -> Option<String> {
    let ready: serde_json::Value = client.get(format!("{base}/readyz")).send().await.ok()?.json().await.ok()?;
    ready["leases"]["holder"].as_str().map(str::to_owned)
}

pub async fn bench(args: &FleetArgs, work: &std::path::Path) -> anyhow::Result<()> {
    let binary = ticketd_binary()?;
    let admin = sqlx::PgPool::connect(&args.postgres_url).await.context("connecting to PostgreSQL")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut single_rate = None;
    for count in 1..=3usize {
        let schema = format!("bench_fleet_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await?;
        let separator = if args.postgres_url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-c%20search_path%3D{schema}", args.postgres_url);
        let kek = work.join(format!("{schema}.keys"));
        let output = Command::new(&binary)
            .args(["token", "create", "--role", "agent", "--name", "bench"])
            .env("TICKETD_DATABASE_URL", &url)
            .env("TICKETD_KEK_FILE", &kek)
            .env("TICKETD_LOG", "warn")
            .output()?;
        anyhow::ensure!(output.status.success(), "token create: {}", String::from_utf8_lossy(&output.stderr));
        let token = String::from_utf8(output.stdout)?.trim().to_owned();
        let mut fleet = Fleet { binary: binary.clone(), url: url.clone(), kek, spawned: 0 };
        let mut instances: Vec<Instance> = (0..count).map(|_| fleet.spawn()).collect::<anyhow::Result<_>>()?;
        let bases = Arc::new(std::sync::RwLock::new(instances.iter().map(|i| i.base.clone()).collect::<Vec<_>>()));

        // Warm-up, then the measured run.
        let stop = Arc::new(AtomicBool::new(false));
        let (_, _, warm) = load(bases.clone(), token.clone(), args.connections, stop.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        for task in warm {
            task.await?;
        }
        let pids: Vec<String> = instances.iter().map(|i| i.child.id().to_string()).collect();
        let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(p)).sum();
        let machine_before = machine_cpu_seconds();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (done, failed, tasks) = load(bases.clone(), token.clone(), args.connections, stop.clone());
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut latency = histogram();
        for task in tasks {
            latency.add(task.await?).ok();
        }
        let elapsed = started.elapsed();
        let cpu = pids.iter().map(|p| cpu_seconds(p)).sum::<f64>() - cpu_before;
        let machine = machine_cpu_seconds() - machine_before;
        let commands = done.load(Ordering::Relaxed);
        let rate = commands as f64 / elapsed.as_secs_f64();
        let single = *single_rate.get_or_insert(rate);
        Measurement {
            backend: "postgres",
            workload: "fleet_commands",
            writers: args.connections,
            operations: commands as usize,
            elapsed,
            latency_us: Some(latency),
            peak_rss_mb: 0.0,
            raw_ops_per_s: None,
            extra: json!({
                "instances": count,
                "failed": failed.load(Ordering::Relaxed),
                "instance_cpu_ms_per_command": (cpu * 1000.0 / commands.max(1) as f64 * 1000.0).round() / 1000.0,
                "machine_cpu_ms_per_command": (machine * 1000.0 / commands.max(1) as f64 * 1000.0).round() / 1000.0,
                "ratio_to_one_instance": (rate / single * 1000.0).round() / 1000.0,
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
                "peak_rss_is": "not measured",
            }),
        }
        .print();

        if count == 3 && args.failovers > 0 {
            let pool = sqlx::PgPool::connect(&url).await?;
            let stop = Arc::new(AtomicBool::new(false));
            let (_, _, tasks) = load(bases.clone(), token.clone(), args.connections, stop.clone());
            let mut failover = histogram();
            let mut samples = Vec::new();
            for _ in 0..args.failovers {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let leader =
                    leader_of(&http, &instances[0].base, "ticket_view").await.context("no ticket_view leader")?;
                let mut victim = None;
                for (i, instance) in instances.iter().enumerate() {
                    if holder_of(&http, &instance.base).await.as_deref() == Some(leader.as_str()) {
                        victim = Some(i);
                    }
                }
                let victim = victim.context("the leader is none of the instances")?;
                bases.write().expect("bases").retain(|b| *b != instances[victim].base);
                let mut killed = instances.remove(victim);
                let position = ticket_view_position(&pool).await;
                let at = Instant::now();
                let _ = killed.child.kill();
                let _ = killed.child.wait();
                // The new leader's first batch: the checkpoint moves past where it stood.
                let position_after_kill = ticket_view_position(&pool).await.max(position);
                loop {
                    if ticket_view_position(&pool).await > position_after_kill {
                        break;
                    }
                    anyhow::ensure!(at.elapsed() < Duration::from_secs(60), "no new leader within 60 s");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let took = at.elapsed();
                failover.record(took.as_millis().max(1) as u64).ok();
                samples.push(took.as_millis() as u64);
                let joined = fleet.spawn()?;
                bases.write().expect("bases").push(joined.base.clone());
                instances.push(joined);
            }
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                task.await?;
            }
            let line = json!({
                "backend": "postgres",
                "workload": "fleet_failover",
                "instances": 3,
                "failovers": args.failovers,
                "lease_seconds": 10,
                "p50_ms": failover.value_at_quantile(0.5),
                "p99_ms": failover.value_at_quantile(0.99),
                "max_ms": failover.max(),
                "samples_ms": samples,
                "target": "a standby leads within 15 s of a crash",
                "target_met": failover.max() < 15_000,
            });
            println!(
                "postgres  fleet_failover         p50={} ms p99={} ms over {} SIGKILLs",
                failover.value_at_quantile(0.5),
                failover.value_at_quantile(0.99),
                args.failovers
            );
            println!("{line}");
        }
        for instance in &instances {
            let _ = Command::new("kill").args(["-TERM", &instance.child.id().to_string()]).status();
        }
        drop(instances);
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await?;
    }
    Ok(())
}
