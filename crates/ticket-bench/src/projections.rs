//! `--projections`: rebuilding every read model from a generated two-year history, beside the
//! raw `read_all` rate of the same store in the same run; and the statistics queries over it.
//!
//! The history: `--history-tickets` tickets (default 200,000) received evenly over
//! `--history-days` days (default 730), each taken through the workflow by the domain's own
//! `decide` (so every history is one the service could have written), with ~25% complaints,
//! 10% escalated, 4% out of scope, 5% still open at the end, surveys sent on every close and
//! 60% of them answered. Events are appended in time order (small concurrent windows, so that
//! group commit works), with their historical times as `occurred_at`.

use std::time::Instant;

use chrono::NaiveDate;
use event_store::{Database, SharedStore};
use serde_json::json;
pub use ticket_bench::history::{generate, load};
use ticket_projections::statistics::Statistics;
use ticket_projections::statistics::query::{self, Dimension, Period, StatsQuery};
use ticket_projections::ticket_view::TicketView;

use crate::{Measurement, histogram, peak_rss_mb, read_all, reset_peak_rss};

async fn rebuild_measured<P: ticket_projections::Projection>(
    backend: &'static str,
    workload: &'static str,
    projection: P,
    store: &SharedStore,
    database: &Database,
    raw_read_all: f64,
) -> anyhow::Result<()> {
    reset_peak_rss();
    let started = Instant::now();
    let applied = ticket_projections::rebuild(&projection, store, database).await?;
    Measurement {
        backend,
        workload,
        writers: 1,
        operations: applied as usize,
        elapsed: started.elapsed(),
        latency_us: None,
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: Some(raw_read_all),
        extra: json!({ "unit": "events", "compared_with": "read_all" }),
    }
    .print();
    Ok(())
}

/// The ledger recording the whole history from its first event (as on the first start after
/// an upgrade), then `ticketd verify` over it: both beside the raw `read_all` rate. The
/// target: verify at least 200,000 events/s.
async fn ledger_measured(
    backend: &'static str,
    store: &SharedStore,
    database: &Database,
    raw_read_all: f64,
) -> anyhow::Result<()> {
    use ticket_ledger::checkpoint::LedgerKey;
    let (private, public) = LedgerKey::generate("bench.example/ledger")?;
    let key = std::sync::Arc::new(LedgerKey::from_text(&private).map_err(anyhow::Error::msg)?);
    // The rebuilds left ticket_index's checkpoint at the end of the log.
    let end = ticket_projections::checkpoint_of(database, "ticket_index").await?;
    reset_peak_rss();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let (status, task) = ticket_projections::ledger::spawn(
        ticket_projections::FollowedLog::new(store.clone()),
        database.clone(),
        ticket_projections::ledger::LedgerOptions {
            key: Some(key),
            checkpoint_events: 100_000,
            checkpoint_interval: std::time::Duration::from_secs(3600),
            now: std::sync::Arc::new(chrono::Utc::now),
        },
        shutdown.clone(),
    );
    let applied = loop {
        let (position, applied, failed) = {
            let status = status.lock().expect("status lock");
            (status.position, status.events_applied, status.failed.clone())
        };
        if let Some(failed) = failed {
            anyhow::bail!("the ledger stopped: {failed}");
        }
        if position >= end && applied > 0 {
            break applied;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = task.await;
    Measurement {
        backend,
        workload: "ledger_record_history",
        writers: 1,
        operations: applied as usize,
        elapsed,
        latency_us: None,
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: Some(raw_read_all),
        extra: json!({ "unit": "events", "compared_with": "read_all" }),
    }
    .print();

    reset_peak_rss();
    let started = Instant::now();
    let report = ticket_projections::ledger::verify(store, database, Some(&public), &[], None).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(report.findings.is_empty(), "verify found {:?}", report.findings.first());
    // Every event read once, however the reading was split (PostgreSQL's halves of the table).
    anyhow::ensure!(
        report.events == applied && report.leaves == applied,
        "verify read {} events and {} leaves of the {applied} recorded",
        report.events,
        report.leaves
    );
    let rate = report.events as f64 / elapsed.as_secs_f64();
    Measurement {
        backend,
        workload: "ledger_verify",
        writers: 1,
        operations: report.events as usize,
        elapsed,
        latency_us: None,
        peak_rss_mb: peak_rss_mb(),
        raw_ops_per_s: Some(raw_read_all),
        extra: json!({ "unit": "events", "compared_with": "read_all", "checkpoints": report.checkpoints,
                        "target_events_per_s": 200_000, "meets_target": rate >= 200_000.0 }),
    }
    .print();
    Ok(())
}

/// The whole projection benchmark on one store.
pub async fn bench(
    backend: &'static str,
    store: SharedStore,
    database: Database,
    tickets: usize,
    days: i64,
    page: usize,
) -> anyhow::Result<()> {
    ticket_projections::migrate(&database).await?;
    let started = Instant::now();
    let history = generate(tickets, days);
    let generated = started.elapsed();
    let events = history.len();
    let started = Instant::now();
    load(&store, tickets, &history).await?;
    let loaded = started.elapsed();
    drop(history);
    println!(
        "{}",
        json!({"backend": backend, "workload": "history_load", "tickets": tickets, "days": days, "events": events,
               "generate_seconds": generated.as_secs_f64(), "append_seconds": loaded.as_secs_f64(),
               "appended_events_per_s": (events as f64 / loaded.as_secs_f64()).round()})
    );

    let raw = read_all(backend, store.clone(), page).await?;
    raw.print();
    let raw_rate = raw.ops_per_s();
    rebuild_measured(
        backend,
        "rebuild_ticket_index",
        ticket_projections::TicketIndex::default(),
        &store,
        &database,
        raw_rate,
    )
    .await?;
    rebuild_measured(backend, "rebuild_ticket_view", TicketView::new(store.clone()), &store, &database, raw_rate)
        .await?;
    rebuild_measured(backend, "rebuild_statistics", Statistics::new(store.clone()), &store, &database, raw_rate)
        .await?;

    ledger_measured(backend, &store, &database, raw_rate).await?;

    // Statistics over the whole history, as a quality manager asks for them.
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let to = from + chrono::Days::new(days as u64 - 1);
    let queries = [
        ("stats_months", StatsQuery { from, to, period: Period::Month, by: None }),
        ("stats_quarters_by_category", StatsQuery { from, to, period: Period::Quarter, by: Some(Dimension::Category) }),
        ("stats_weeks_by_division", StatsQuery { from, to, period: Period::Week, by: Some(Dimension::Division) }),
    ];
    // Cold: every day read and decoded (a server's first report). Served: what the API does,
    // with its day cache (each report checks every day's revision, fetches the changed ones).
    let cache = query::DayCache::default();
    for (workload, stats_query, cached) in queries
        .iter()
        .map(|(name, q)| (format!("{name}_cold"), *q, false))
        .chain(queries.iter().map(|(name, q)| (format!("{name}_served"), *q, true)))
    {
        let workload: &'static str = Box::leak(workload.into_boxed_str());
        reset_peak_rss();
        let mut latency = histogram();
        let runs = 20;
        let started = Instant::now();
        let mut rows = 0;
        for _ in 0..runs {
            let one = Instant::now();
            let report = if cached {
                query::report(&cache.days(&database).await?, &stats_query)
            } else {
                query::run(&database, &stats_query).await?
            };
            latency.record(one.elapsed().as_micros().max(1) as u64)?;
            rows = report.summary.len();
        }
        Measurement {
            backend,
            workload,
            writers: 1,
            operations: runs,
            elapsed: started.elapsed(),
            latency_us: Some(latency),
            peak_rss_mb: peak_rss_mb(),
            raw_ops_per_s: None,
            extra: json!({ "days": days, "rows": rows }),
        }
        .print();
    }
    Ok(())
}
