//! `ticket-bench`: the store benchmark of the ticket lifecycle, beside the raw speed of the
//! same database in the same run (this machine is shared and noisy: only ratios mean much).
//!
//! Workloads, per backend:
//! - `raw_insert`: plain single-row INSERTs of rows shaped like ours into a plain table of the
//!   same database, autocommit, same durability, `writers` clients.
//! - `lifecycle`: N tickets, each Receive → Acknowledge → Investigate → Resolve → Close; every
//!   command loads the ticket, decides and appends with its expected version; `writers` tasks.
//!   Run with the service's ticket cache (the default configuration) and without it (every
//!   command reads its stream from the database first).
//! - `lifecycle_sealed`: the cached lifecycle with every personal part sealed (`ticket-vault`),
//!   beside the plain one: the cost of crypto-shredding (target: at least 90% of its rate).
//! - `read_all`: every event in global order, in pages of 1,000.
//! - `load_ticket_50`: loading (reading and folding) tickets of 50 events, one at a time.
//! - with `--http`: `http_lifecycle`, the same lifecycle over the HTTP API of a real `ticketd
//!   serve` process (the release binary beside this one) at `--http-connections` connections,
//!   compared with the foundation `lifecycle` (store only, `--writers`) and with `lifecycle`
//!   through the store alone at the same concurrency, in the same run.
//! - with `--console` (instead of the store workloads; `src/console.rs`): the staff console's
//!   queue page (50 rows, filtered) and ticket page (200 events) beside the JSON API's requests
//!   for the same data, p50/p99 of one sequential keep-alive client against a real `ticketd
//!   serve` over `--console-tickets` tickets (default 100,000); the console lines say whether
//!   the target holds (p99 ≤ 2 × the API's p99 and < 30 ms).
//!
//! Each measurement prints a table row and one JSON object on its own line.

mod console;
mod fleet;
mod projections;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use event_store::postgres::{PostgresOptions, PostgresStore};
use event_store::sqlite::{SqliteOptions, SqliteStore};
use event_store::{GlobalPosition, SharedStore};
use hdrhistogram::Histogram;
use serde_json::json;
use ticket_app::{CommandContext, ServiceOptions, SystemClock, TicketService};
use ticket_domain::vocabulary::{Actor, Category, Role, TicketId};
use ticket_domain::{TicketCommand, sample};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Benchmarks the event store and the command path against the raw database")]
struct Args {
    /// Which backends to measure.
    #[arg(long, value_enum, num_args = 1.., default_values = ["sqlite", "postgres"])]
    backend: Vec<Backend>,
    /// Tickets in the lifecycle workload (5 events each).
    #[arg(long, default_value_t = 20_000)]
    tickets: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Tickets of 50 events to load in `load_ticket_50`.
    #[arg(long, default_value_t = 300)]
    long_tickets: usize,
    /// PostgreSQL to measure (a fresh schema is created and dropped).
    #[arg(long, env = "TICKETD_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// PostgreSQL batches written at the same time (group commit).
    #[arg(long, default_value_t = PostgresOptions::default().batch_writers)]
    postgres_batch_writers: usize,
    /// Events per page when reading everything in global order.
    #[arg(long, default_value_t = 1_000)]
    read_page: usize,
    /// Also run the lifecycle over HTTP against a `ticketd serve` process.
    #[arg(long)]
    http: bool,
    /// Concurrent HTTP connections (and store-only writers to compare with).
    #[arg(long, default_value_t = 32)]
    http_connections: usize,
    /// Tickets in the HTTP lifecycle workload.
    #[arg(long, default_value_t = 4_000)]
    http_tickets: usize,
    /// Instead of the store workloads: rebuild every read model from a generated history and
    /// query the statistics over it (see `projections.rs`).
    #[arg(long)]
    projections: bool,
    /// Tickets in the generated history of `--projections`.
    #[arg(long, default_value_t = 200_000)]
    history_tickets: usize,
    /// Days the generated history spans.
    #[arg(long, default_value_t = 730)]
    history_days: i64,
    /// Instead of the store workloads: the staff console's pages beside the JSON API over a
    /// generated store, against a real `ticketd serve` (see `console.rs`).
    #[arg(long)]
    console: bool,
    /// Instead of the store workloads: one, two and three `ticketd serve` instances on one
    /// PostgreSQL, and the failover time after SIGKILLing a leader (see `fleet.rs`).
    #[arg(long)]
    fleet: bool,
    /// Seconds each `--fleet` instance count is measured.
    #[arg(long, default_value_t = 15)]
    fleet_seconds: u64,
    /// Concurrent clients of `--fleet`.
    #[arg(long, default_value_t = 8)]
    fleet_connections: usize,
    /// SIGKILLed leaders of `--fleet` (with three instances).
    #[arg(long, default_value_t = 5)]
    fleet_failovers: usize,
    /// Tickets in the store of `--console` (one more, of 200 events, is added).
    #[arg(long, default_value_t = 100_000)]
    console_tickets: usize,
    /// Days the `--console` history spans (default: 180 per 100,000 tickets).
    #[arg(long)]
    console_days: Option<i64>,
    /// Measured rounds of `--console` (each round one request of each kind).
    #[arg(long, default_value_t = 500)]
    console_requests: usize,
    /// Warm-up rounds of `--console`, not measured.
    #[arg(long, default_value_t = 50)]
    console_warmup: usize,
    /// Folder for the SQLite file (a temporary folder by default).
    #[arg(long)]
    sqlite_dir: Option<PathBuf>,
}

/// One measurement line.
struct Measurement {
    backend: &'static str,
    workload: &'static str,
    writers: usize,
    operations: usize,
    elapsed: Duration,
    latency_us: Option<Histogram<u64>>,
    peak_rss_mb: f64,
    raw_ops_per_s: Option<f64>,
    extra: serde_json::Value,
}

impl Measurement {
    fn ops_per_s(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let quantile_ms = |q: f64| self.latency_us.as_ref().map(|h| h.value_at_quantile(q) as f64 / 1000.0);
        let ratio = self.raw_ops_per_s.map(|raw| self.ops_per_s() / raw);
        println!(
            "{:<9} {:<22} writers={:<3} ops={:<7} {:>10.0} ops/s  p50={:>7} ms  p99={:>7} ms  rss={:>6.1} MB{}",
            self.backend,
            self.workload,
            self.writers,
            self.operations,
            self.ops_per_s(),
            quantile_ms(0.5).map_or("-".into(), |v| format!("{v:.3}")),
            quantile_ms(0.99).map_or("-".into(), |v| format!("{v:.3}")),
            self.peak_rss_mb,
            ratio.map_or(String::new(), |r| format!("  = {:.2} of raw", r)),
        );
        let mut line = json!({
            "backend": self.backend,
            "workload": self.workload,
            "writers": self.writers,
            "operations": self.operations,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "ops_per_s": self.ops_per_s().round(),
            "p50_ms": quantile_ms(0.5),
            "p99_ms": quantile_ms(0.99),
            "p999_ms": quantile_ms(0.999),
            "peak_rss_mb": (self.peak_rss_mb * 10.0).round() / 10.0,
            "raw_ops_per_s": self.raw_ops_per_s.map(f64::round),
            "ratio_to_raw": ratio.map(|r| (r * 1000.0).round() / 1000.0),
        });
        if let (Some(line), Some(extra)) = (line.as_object_mut(), self.extra.as_object()) {
            line.extend(extra.clone());
        }
        println!("{line}");
    }
}

/// Resets the kernel's peak-RSS mark, so each measurement reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.fleet {
        println!(
            "# ticket-bench --fleet: 1, 2 and 3 instances on one PostgreSQL, {} clients, {} s each, {} failovers; release build expected; one JSON object per measurement line",
            args.fleet_connections, args.fleet_seconds, args.fleet_failovers
        );
        let work = tempfile::tempdir()?;
        let fleet_args = fleet::FleetArgs {
            postgres_url: args.postgres_url.clone(),
            seconds: args.fleet_seconds,
            connections: args.fleet_connections,
            failovers: args.fleet_failovers,
        };
        return fleet::bench(&fleet_args, work.path()).await;
    }
    if args.console {
        println!(
            "# ticket-bench --console: console pages beside the JSON API over {} tickets, {} rounds after {} of warm-up; release build expected; one JSON object per measurement line",
            args.console_tickets, args.console_requests, args.console_warmup
        );
    } else if args.projections {
        println!(
            "# ticket-bench --projections: a {}-day history of {} tickets; release build expected; one JSON object per measurement line",
            args.history_days, args.history_tickets
        );
    } else {
        println!(
            "# ticket-bench: {} tickets ({} events), {} writers; release build expected; one JSON object per measurement line",
            args.tickets,
            args.tickets * 5,
            args.writers
        );
    }
    for backend in &args.backend {
        match backend {
            Backend::Sqlite => bench_sqlite(&args).await?,
            Backend::Postgres => bench_postgres(&args).await?,
        }
    }
    Ok(())
}

async fn bench_sqlite(args: &Args) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let dir = args.sqlite_dir.clone().unwrap_or_else(|| temporary.path().to_owned());
    // Three files: the raw table, and one store per lifecycle run, so no run works on a
    // bigger file than another.
    let open = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        async move { SqliteStore::open(&path, SqliteOptions::default()).await }
    };
    if args.console {
        let path = dir.join("console.db");
        let store = Arc::new(open("console.db").await?);
        let database =
            event_store::Database::Sqlite { write: store.write_pool().clone(), read: store.read_pool().clone() };
        let url = format!("sqlite:{}", path.display());
        return console::bench("sqlite", &console_args(args), store, database, &url, &dir).await;
    }
    if args.projections {
        let store = Arc::new(open("history.db").await?);
        let database =
            event_store::Database::Sqlite { write: store.write_pool().clone(), read: store.read_pool().clone() };
        return projections::bench("sqlite", store, database, args.history_tickets, args.history_days, args.read_page)
            .await;
    }
    let raw_store = open("raw.db").await?;
    sqlx::query(
        "CREATE TABLE raw_events (position INTEGER PRIMARY KEY AUTOINCREMENT, event_id BLOB NOT NULL, \
         stream_id TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, \
         occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, actor TEXT NOT NULL, correlation_id BLOB NOT NULL, \
         causation_id BLOB, payload TEXT NOT NULL)",
    )
    .execute(raw_store.write_pool())
    .await?;
    let pool = raw_store.write_pool().clone();
    let raw = raw_inserts("sqlite", args, move |row| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO raw_events (event_id, stream_id, version, event_type, schema_version, occurred_at, \
                 recorded_at, actor, correlation_id, causation_id, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            )
            .bind(row.event_id)
            .bind(row.stream)
            .bind(row.version)
            .bind(row.event_type)
            .bind(1i64)
            .bind(row.micros)
            .bind(row.micros)
            .bind(row.actor)
            .bind(row.event_id)
            .bind(row.event_id)
            .bind(row.payload)
            .execute(&pool)
            .await
            .map(|_| ())
        }
    })
    .await?;
    raw.print();
    let raw_rate = raw.ops_per_s();

    let cached: SharedStore = Arc::new(open("events-cached.db").await?);
    let foundation = lifecycle("sqlite", args, cached.clone(), true, raw_rate).await?;
    foundation.print();
    let sealed = open("events-sealed.db").await?;
    let database =
        event_store::Database::Sqlite { write: sealed.write_pool().clone(), read: sealed.read_pool().clone() };
    sealed_lifecycle("sqlite", args, Arc::new(sealed), database, foundation.ops_per_s(), raw_rate).await?.print();
    let uncached: SharedStore = Arc::new(open("events.db").await?);
    lifecycle("sqlite", args, uncached.clone(), false, raw_rate).await?.print();
    read_all("sqlite", uncached.clone(), args.read_page).await?.print();
    load_long_tickets("sqlite", args, uncached).await?.print();
    if args.http {
        let store_only: SharedStore = Arc::new(open("events-store-32.db").await?);
        let store_args = Args { tickets: args.http_tickets, writers: args.http_connections, ..args.clone() };
        let store_only = lifecycle("sqlite", &store_args, store_only, true, raw_rate).await?;
        store_only.print();
        let url = format!("sqlite:{}", dir.join("events-http.db").display());
        http_lifecycle("sqlite", args, &url, store_only.ops_per_s(), foundation.ops_per_s()).await?.print();
    }
    Ok(())
}

async fn bench_postgres(args: &Args) -> anyhow::Result<()> {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let connect = |name: &str| {
        let options = PostgresOptions {
            max_connections: (args.writers as u32 + 4).max(8),
            schema: Some(format!("{schema}_{name}")),
            batch_writers: args.postgres_batch_writers,
            ..PostgresOptions::default()
        };
        let url = args.postgres_url.clone();
        async move { PostgresStore::connect(&url, options).await }
    };
    let result = async {
        if args.console {
            let store = Arc::new(connect("console").await.context("connecting to PostgreSQL")?);
            let database = event_store::Database::Postgres(store.pool().clone());
            // The server keeps its tables beside the log, in the same schema.
            let separator = if args.postgres_url.contains('?') { '&' } else { '?' };
            let url = format!("{}{separator}options=-c%20search_path%3D{schema}_console", args.postgres_url);
            let work = tempfile::tempdir()?;
            return console::bench("postgres", &console_args(args), store, database, &url, work.path()).await;
        }
        if args.projections {
            let store = Arc::new(connect("history").await.context("connecting to PostgreSQL")?);
            let database = event_store::Database::Postgres(store.pool().clone());
            return projections::bench(
                "postgres",
                store,
                database,
                args.history_tickets,
                args.history_days,
                args.read_page,
            )
            .await;
        }
        let raw_store = connect("raw").await.context("connecting to PostgreSQL")?;
        sqlx::query(
            "CREATE TABLE raw_events (position bigserial PRIMARY KEY, event_id uuid NOT NULL, stream_id text NOT NULL, \
             version bigint NOT NULL, event_type text NOT NULL, schema_version integer NOT NULL, \
             occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), actor jsonb NOT NULL, \
             correlation_id uuid NOT NULL, causation_id uuid, payload jsonb NOT NULL)",
        )
        .execute(raw_store.pool())
        .await?;
        let pool = raw_store.pool().clone();
        let raw = raw_inserts("postgres", args, move |row| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO raw_events (event_id, stream_id, version, event_type, schema_version, occurred_at, \
                     actor, correlation_id, causation_id, payload) \
                     VALUES ($1, $2, $3, $4, 1, now(), $5::jsonb, $6, $7, $8::jsonb)",
                )
                .bind(row.event_id)
                .bind(row.stream)
                .bind(row.version)
                .bind(row.event_type)
                .bind(row.actor)
                .bind(row.event_id)
                .bind(row.event_id)
                .bind(row.payload)
                .execute(&pool)
                .await
                .map(|_| ())
            }
        })
        .await?;
        raw.print();
        let raw_rate = raw.ops_per_s();
        let cached: SharedStore = Arc::new(connect("cached").await?);
        let foundation = lifecycle("postgres", args, cached, true, raw_rate).await?;
        foundation.print();
        let sealed = connect("sealed").await?;
        let database = event_store::Database::Postgres(sealed.pool().clone());
        sealed_lifecycle("postgres", args, Arc::new(sealed), database, foundation.ops_per_s(), raw_rate).await?.print();
        let uncached: SharedStore = Arc::new(connect("uncached").await?);
        lifecycle("postgres", args, uncached.clone(), false, raw_rate).await?.print();
        read_all("postgres", uncached.clone(), args.read_page).await?.print();
        load_long_tickets("postgres", args, uncached).await?.print();
        if args.http {
            let store_only: SharedStore = Arc::new(connect("store32").await?);
            let store_args = Args { tickets: args.http_tickets, writers: args.http_connections, ..args.clone() };
            let store_only = lifecycle("postgres", &store_args, store_only, true, raw_rate).await?;
            store_only.print();
            // The server keeps its tables in a schema of its own.
            let http_schema = format!("{schema}_http");
            let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&args.postgres_url).await?;
            sqlx::query(&format!("CREATE SCHEMA {http_schema}")).execute(&mut connection).await?;
            let separator = if args.postgres_url.contains('?') { '&' } else { '?' };
            let url = format!("{}{separator}options=-c%20search_path%3D{http_schema}", args.postgres_url);
            http_lifecycle("postgres", args, &url, store_only.ops_per_s(), foundation.ops_per_s()).await?.print();
        }
        anyhow::Ok(())
    }
    .await;
    // Leave the database as we found it.
    if let Ok(mut connection) = <sqlx::PgConnection as sqlx::Connection>::connect(&args.postgres_url).await {
        for name in ["raw", "cached", "sealed", "uncached", "store32", "http", "history", "console"] {
            let _ =
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema}_{name} CASCADE")).execute(&mut connection).await;
        }
    }
    result
}

fn console_args(args: &Args) -> console::ConsoleArgs {
    console::ConsoleArgs {
        tickets: args.console_tickets,
        days: args.console_days,
        requests: args.console_requests,
        warmup: args.console_warmup,
    }
}

/// A row shaped like a stored lifecycle event.
struct RawRow {
    event_id: uuid::Uuid,
    stream: String,
    version: i64,
    event_type: &'static str,
    micros: i64,
    actor: String,
    payload: String,
}

async fn raw_inserts<F, Fut>(backend: &'static str, args: &Args, insert: F) -> anyhow::Result<Measurement>
where
    F: Fn(RawRow) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>> + Send,
{
    // The payload of a real Received event, so rows weigh what ours weigh.
    let payload =
        ticket_domain::codec::encode(&ticket_domain::TicketEvent::Received(received_event())).payload.to_string();
    let actor = serde_json::to_string(&agent()).expect("an actor serialises");
    let total = args.tickets * 5;
    reset_peak_rss();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let insert = insert.clone();
        let (payload, actor) = (payload.clone(), actor.clone());
        let rows = (writer..total).step_by(args.writers).count();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            for i in 0..rows {
                let row = RawRow {
                    event_id: uuid::Uuid::now_v7(),
                    stream: format!("ticket-{writer}-{}", i / 5),
                    version: (i % 5) as i64 + 1,
                    event_type: "Received",
                    micros: chrono::Utc::now().timestamp_micros(),
                    actor: actor.clone(),
                    payload: payload.clone(),
                };
                let start = Instant::now();
                insert(row).await?;
                latency.record(start.elapsed().as_micros() as u64).ok();
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await??)?;
    }
    Ok(Measurement {
        backend,
        workload: "raw_insert",
        writers: args.writers,
        operations: total,
        elapsed: started.elapsed(),
        latency_us: Some(latency),
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: None,
        extra: json!({}),
    })
}

fn agent() -> Actor {
    Actor::Staff { name: "bench-agent".into(), role: Role::Agent }
}

fn received_event() -> ticket_domain::event::Received {
    let events = ticket_domain::Ticket::default()
        .decide(TicketCommand::Receive(sample::receive(1)), chrono::Utc::now())
        .expect("a new ticket accepts Receive");
    match events.into_iter().next() {
        Some(ticket_domain::TicketEvent::Received(received)) => received,
        other => unreachable!("Receive decides Received, got {other:?}"),
    }
}

/// The foundation lifecycle with every personal part sealed (crypto-shredding): each ticket's
/// data key made with its first event, each event's personal object encrypted. Target: at
/// least 90% of the plain lifecycle's commands per second in the same run.
async fn sealed_lifecycle(
    backend: &'static str,
    args: &Args,
    inner: SharedStore,
    database: event_store::Database,
    plain_rate: f64,
    raw_rate: f64,
) -> anyhow::Result<Measurement> {
    ticket_vault::migrate(&database).await?;
    let vault = Arc::new(ticket_vault::Vault::new(database, ticket_vault::Keks::generate("bench")));
    let store: SharedStore = Arc::new(ticket_vault::SealedStore::new(inner, vault));
    let mut measured = lifecycle(backend, args, store, true, raw_rate).await?;
    let ratio = measured.ops_per_s() / plain_rate;
    measured.workload = "lifecycle_sealed";
    measured.extra["plain_lifecycle_ops_per_s"] = json!(plain_rate.round());
    measured.extra["ratio_to_lifecycle"] = json!((ratio * 1000.0).round() / 1000.0);
    measured.extra["target_ratio"] = json!(0.9);
    measured.extra["meets_target"] = json!(ratio >= 0.9);
    Ok(measured)
}

async fn lifecycle(
    backend: &'static str,
    args: &Args,
    store: SharedStore,
    cache: bool,
    raw_rate: f64,
) -> anyhow::Result<Measurement> {
    let options = ServiceOptions { cache_capacity: if cache { 100_000 } else { 0 }, ..ServiceOptions::default() };
    let service = Arc::new(TicketService::new(store, Arc::new(SystemClock), options));
    reset_peak_rss();
    let (own_cpu_before, postgres_cpu_before) = (cpu_seconds("self"), postgres_cpu_seconds());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let service = service.clone();
        let tickets: Vec<usize> = (writer..args.tickets).step_by(args.writers).collect();
        tasks.push(tokio::spawn(async move {
            let context = CommandContext::new(agent());
            let mut latency = histogram();
            for number in tickets {
                let id = TicketId::new();
                let commands = [
                    TicketCommand::Receive(sample::receive(number as u64 + 1)),
                    sample::acknowledge(),
                    sample::investigate(Category::Complaint),
                    sample::resolve(),
                    TicketCommand::Close,
                ];
                for command in commands {
                    let start = Instant::now();
                    service.execute(id, None, command, &context).await?;
                    latency.record(start.elapsed().as_micros() as u64).ok();
                }
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await??)?;
    }
    let per_op = |seconds: f64| (seconds * 1_000_000.0 / (args.tickets * 5) as f64).round() / 1000.0;
    let (own_cpu, postgres_cpu) = (cpu_seconds("self") - own_cpu_before, postgres_cpu_seconds() - postgres_cpu_before);
    Ok(Measurement {
        backend,
        workload: if cache { "lifecycle" } else { "lifecycle_uncached" },
        writers: args.writers,
        operations: args.tickets * 5,
        elapsed: started.elapsed(),
        latency_us: Some(latency),
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: Some(raw_rate),
        extra: json!({ "tickets": args.tickets, "cache": cache, "own_cpu_ms_per_op": per_op(own_cpu),
                       "postgres_cpu_ms_per_op": per_op(postgres_cpu) }),
    })
}

async fn read_all(backend: &'static str, store: SharedStore, page_size: usize) -> anyhow::Result<Measurement> {
    reset_peak_rss();
    let started = Instant::now();
    let mut after = GlobalPosition::START;
    let mut count = 0;
    loop {
        let page = store.read_all(after, page_size).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        count += page.len();
    }
    Ok(Measurement {
        backend,
        workload: "read_all",
        writers: 1,
        operations: count,
        elapsed: started.elapsed(),
        latency_us: None,
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: None,
        extra: json!({ "page": page_size }),
    })
}

async fn load_long_tickets(backend: &'static str, args: &Args, store: SharedStore) -> anyhow::Result<Measurement> {
    const EVENTS_PER_TICKET: usize = 50;
    const LOADS_PER_TICKET: usize = 5;
    let service = Arc::new(TicketService::new(store, Arc::new(SystemClock), ServiceOptions::default()));
    let context = CommandContext::new(agent());
    // Setup: tickets of 50 events (a receipt, then notes), written by all writers.
    let mut ids = Vec::new();
    let mut tasks = Vec::new();
    for writer in 0..args.writers {
        let service = service.clone();
        let context = context.clone();
        let count = (writer..args.long_tickets).step_by(args.writers).count();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..count {
                let id = TicketId::new();
                let receive = TicketCommand::Receive(sample::receive(1_000_000 + (writer * 10_000 + i) as u64));
                service.execute(id, None, receive, &context).await?;
                for _ in 1..EVENTS_PER_TICKET {
                    service.execute(id, None, sample::note(), &context).await?;
                }
                ids.push(id);
            }
            anyhow::Ok(ids)
        }));
    }
    for task in tasks {
        ids.extend(task.await??);
    }
    reset_peak_rss();
    let mut latency = histogram();
    let started = Instant::now();
    for _ in 0..LOADS_PER_TICKET {
        for id in &ids {
            let start = Instant::now();
            let ticket = service.load(*id).await?;
            latency.record(start.elapsed().as_micros() as u64).ok();
            anyhow::ensure!(ticket.version() == EVENTS_PER_TICKET as u64, "a long ticket lost events");
        }
    }
    Ok(Measurement {
        backend,
        workload: "load_ticket_50",
        writers: 1,
        operations: ids.len() * LOADS_PER_TICKET,
        elapsed: started.elapsed(),
        latency_us: Some(latency),
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: None,
        extra: json!({ "events_per_ticket": EVENTS_PER_TICKET }),
    })
}

/// The `ticketd` binary beside this one (build it with `cargo build --release -p ticketd`).
fn ticketd_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("ticketd");
    anyhow::ensure!(path.exists(), "{} is missing: run `cargo build --release -p ticketd` first", path.display());
    Ok(path)
}

/// The lifecycle over HTTP: a real `ticketd serve`, `http_connections` concurrent clients.
/// `store_only_rate`: the store-only lifecycle at the same concurrency; `foundation_rate`: the
/// foundation benchmark's store-only lifecycle (`--writers`), both from this run.
async fn http_lifecycle(
    backend: &'static str,
    args: &Args,
    database_url: &str,
    store_only_rate: f64,
    foundation_rate: f64,
) -> anyhow::Result<Measurement> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let binary = ticketd_binary()?;
    let token = Command::new(&binary)
        .args(["token", "create", "--role", "agent", "--name", "bench"])
        .env("TICKETD_DATABASE_URL", database_url)
        .output()?;
    anyhow::ensure!(token.status.success(), "token create failed: {}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    let mut server = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TICKETD_DATABASE_URL", database_url)
        .env("TICKETD_LOG", "warn")
        // The workload acknowledges by command; with mail on, the mailer would acknowledge each
        // new ticket itself (after its confirmation) and race the workload. Mail is still
        // enqueued (the outbox projection runs), only not sent.
        .env("TICKETD_MAIL", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("server stdout")?).read_line(&mut line)?;
    let base = line.trim().strip_prefix("listening on ").context("the server's address")?.to_owned();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.http_connections).build()?;
    let client_cpu_before = cpu_seconds("self");
    let server_cpu_before = cpu_seconds(&server.id().to_string());
    let postgres_cpu_before = postgres_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..args.http_connections {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        let tickets = (connection..args.http_tickets).step_by(args.http_connections).count();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut timed = |start: Instant| {
                latency.record(start.elapsed().as_micros() as u64).ok();
            };
            for _ in 0..tickets {
                let start = Instant::now();
                let created: serde_json::Value = client
                    .post(format!("{base}/api/v1/tickets"))
                    .bearer_auth(&token)
                    .json(&json!({"channel": "phone", "reporter": {"name": "Kovács Anna", "email": "kovacs.anna@example.hu"},
                                  "subject": "Nem tudok belépni a Normába", "message": "Tegnap óta hibát kapok belépéskor."}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                timed(start);
                let id = created["id"].as_str().context("a ticket id")?.to_owned();
                let steps = [
                    ("acknowledge", json!({})),
                    ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
                    ("resolve", json!({"resolution": "Javítottuk.", "root_cause": "session-expiry-bug", "within_own_authority": true})),
                    ("close", json!({})),
                ];
                for (action, body) in steps {
                    let start = Instant::now();
                    client
                        .post(format!("{base}/api/v1/tickets/{id}/{action}"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    timed(start);
                }
            }
            anyhow::Ok(latency)
        }));
    }
    let mut latency = histogram();
    let mut failure = None;
    for task in tasks {
        match task.await? {
            Ok(h) => latency.add(h)?,
            Err(error) => failure = Some(error),
        }
    }
    let elapsed = started.elapsed();
    let client_cpu = cpu_seconds("self") - client_cpu_before;
    let server_cpu = cpu_seconds(&server.id().to_string()) - server_cpu_before;
    let postgres_cpu = postgres_cpu_seconds() - postgres_cpu_before;
    let server_peak_rss_mb = console::server_peak_rss_mb(&server);
    // The read models' lag during the run, as the server measured it (from each event's
    // recording to the commit of the read model showing it); the last events are given a
    // moment to be applied first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Ok(response) = client.get(format!("{base}/readyz")).send().await
        && let Ok(ready) = response.json::<serde_json::Value>().await
    {
        for projection in ready["projections"].as_array().into_iter().flatten() {
            let lag = &projection["lag"];
            println!(
                "{backend:<9} live_lag {:<14} events={:<7} p50={} ms  p99={} ms  max={} ms",
                projection["name"].as_str().unwrap_or("?"),
                lag["events"],
                lag["p50_ms"],
                lag["p99_ms"],
                lag["max_ms"]
            );
            println!(
                "{}",
                json!({"backend": backend, "workload": "live_lag", "projection": projection["name"],
                       "events": lag["events"], "p50_ms": lag["p50_ms"], "p99_ms": lag["p99_ms"],
                       "max_ms": lag["max_ms"], "during": "http_lifecycle"})
            );
        }
    }
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(Measurement {
        backend,
        workload: "http_lifecycle",
        writers: args.http_connections,
        operations: args.http_tickets * 5,
        elapsed,
        latency_us: Some(latency),
        peak_rss_mb: server_peak_rss_mb,
        raw_ops_per_s: None,
        extra: json!({
            "store_only_ops_per_s": store_only_rate.round(),
            "foundation_lifecycle_ops_per_s": foundation_rate.round(),
            "ratio_to_foundation_lifecycle": ((args.http_tickets * 5) as f64 / elapsed.as_secs_f64() / foundation_rate * 1000.0).round() / 1000.0,
            "ratio_to_store_only": ((args.http_tickets * 5) as f64 / elapsed.as_secs_f64() / store_only_rate * 1000.0).round() / 1000.0,
            "peak_rss_is": "server",
            "server_cpu_ms_per_op": (server_cpu * 1000.0 / (args.http_tickets * 5) as f64 * 1000.0).round() / 1000.0,
            "client_cpu_ms_per_op": (client_cpu * 1000.0 / (args.http_tickets * 5) as f64 * 1000.0).round() / 1000.0,
            "postgres_cpu_ms_per_op": (postgres_cpu * 1000.0 / (args.http_tickets * 5) as f64 * 1000.0).round() / 1000.0,
        }),
    })
}

/// CPU time (user + system) a process has used, in seconds; `who` is a pid or "self".
/// CPU time all `postgres` processes of this machine have used, in seconds (0 when none are
/// visible): the database server's share of a workload.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(|pid| cpu_seconds(&pid))
        .sum()
}

fn cpu_seconds(who: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
