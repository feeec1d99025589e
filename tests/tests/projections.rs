//! Read models built live equal the same read models rebuilt from zero, for random histories,
//! on both stores (the ticket view and the statistics); and each ticket view row is the
//! domain's own fold of its ticket.

use std::sync::Arc;
use std::time::Duration;

use event_store::{Database, GlobalPosition};
use proptest::prelude::*;
use ticket_app::{CommandContext, ServiceOptions, SystemClock, TicketService};
use ticket_domain::vocabulary::{Actor, Category, Role, TicketId};
use ticket_domain::{TicketCommand, sample};
use ticket_projections::FollowedLog;
use ticket_projections::statistics::Statistics;
use ticket_projections::statistics::facts::DayFacts;
use ticket_projections::ticket_view::TicketView;
use ticket_tests::backends::{self, TestStore};
use tokio_util::sync::CancellationToken;

fn command() -> impl Strategy<Value = TicketCommand> {
    prop_oneof![
        Just(sample::acknowledge()),
        Just(sample::investigate(Category::Complaint)),
        Just(sample::investigate(Category::BugReport)),
        Just(sample::escalate("legal")),
        Just(sample::answer_escalation()),
        Just(sample::resolve()),
        Just(TicketCommand::Close),
        Just(sample::survey_sent()),
        Just(sample::answer_survey(4)),
        Just(sample::reopen()),
        Just(sample::reclassify(Category::InformationRequest)),
        Just(sample::assign("kata")),
        Just(sample::assign("bence")),
        Just(sample::note()),
        Just(sample::out_of_scope()),
    ]
}

/// (which of three tickets, what to ask of it)
fn history() -> impl Strategy<Value = Vec<(usize, TicketCommand)>> {
    prop::collection::vec((0usize..3, command()), 1..30)
}

type Row = (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, String);

async fn dump(database: &Database) -> Vec<Row> {
    let sql = "SELECT number, version, status, category, service_area, assignee, escalated_to, survey \
               FROM ticket_view ORDER BY number";
    match database {
        Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// The statistics read model, decoded: each day's counts and durations.
async fn dump_statistics(database: &Database) -> Vec<(i32, std::sync::Arc<DayFacts>)> {
    ticket_projections::statistics::query::load(database).await.unwrap()
}

/// The last event's position. Read from the table, not through `read_all`: that stops short
/// of events behind a transaction still running anywhere on the server (other tests' too).
async fn head(database: &Database) -> GlobalPosition {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    let position: i64 = match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    };
    GlobalPosition(position)
}

async fn live_equals_rebuilt(test_store: TestStore) {
    let store = test_store.store.clone();
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let shutdown = CancellationToken::new();
    // The runners follow the log as the server's do: through one shared tail (a small one).
    let followed = FollowedLog::with_capacity(store.clone(), 32);
    let (status, runner) =
        ticket_projections::spawn(TicketView::new(store.clone()), followed.clone(), database.clone(), shutdown.clone());
    let (stats_status, stats_runner) =
        ticket_projections::spawn(Statistics::new(store.clone()), followed.clone(), database.clone(), shutdown.clone());
    let service = Arc::new(TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
    let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    let number = std::sync::atomic::AtomicU64::new(0);
    let config = ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner_proptest = proptest::test_runner::TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result = runner_proptest.run(&history(), |history| {
        let outcome: Result<(), String> = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let tickets: Vec<TicketId> = (0..3).map(|_| TicketId::new()).collect();
                for id in &tickets {
                    let next = number.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    service.execute(*id, None, TicketCommand::Receive(sample::receive(next)), &context).await.unwrap();
                }
                for (which, command) in history {
                    // Refusals are part of random histories; only accepted commands write.
                    let _ = service.execute(tickets[which], None, command, &context).await;
                }
                let target = head(&database).await;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                for status in [&status, &stats_status] {
                    while status.lock().unwrap().position < target {
                        if tokio::time::Instant::now() > deadline {
                            return Err(format!("a live projection stalled: {:?}", status.lock().unwrap()));
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                let live = dump(&database).await;
                let live_stats = dump_statistics(&database).await;
                if live_stats.is_empty() {
                    return Err("the live statistics are empty".into());
                }
                for id in &tickets {
                    let ticket = service.load(*id).await.unwrap();
                    let state = ticket.state().unwrap();
                    let row = live.iter().find(|r| r.0 == state.number.get() as i64).ok_or("a ticket has no row")?;
                    if (row.1, row.2.as_str()) != (ticket.version() as i64, state.status.name()) {
                        return Err(format!("row {row:?} is not the fold (v{}, {})", ticket.version(), state.status));
                    }
                }
                ticket_projections::rebuild(&TicketView::new(store.clone()), &store, &database)
                    .await
                    .map_err(|e| e.to_string())?;
                let rebuilt = dump(&database).await;
                if live != rebuilt {
                    return Err(format!("live {live:?}\nrebuilt {rebuilt:?}"));
                }
                ticket_projections::rebuild(&Statistics::new(store.clone()), &store, &database)
                    .await
                    .map_err(|e| e.to_string())?;
                let rebuilt_stats = dump_statistics(&database).await;
                if live_stats != rebuilt_stats {
                    return Err(format!("live statistics {live_stats:?}\nrebuilt {rebuilt_stats:?}"));
                }
                Ok(())
            })
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        Ok(())
    });
    shutdown.cancel();
    let _ = runner.await;
    let _ = stats_runner.await;
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(status.lock().unwrap().failed.is_none());
    assert!(stats_status.lock().unwrap().failed.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_models_built_live_equal_a_rebuild() {
    live_equals_rebuilt(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_built_live_equal_a_rebuild() {
    let Some(test_store) = backends::postgres().await else { return };
    live_equals_rebuilt(test_store).await;
}

/// Runners aborted at varying moments (waiting, reading, folding, applying; a transaction
/// already begun runs to its end on its own, see `apply_batch`) and started again while
/// commands keep coming: at the end the read models equal a rebuild from zero, and the
/// statistics count every ticket exactly once. (The API tests kill the whole process.)
async fn killed_runners_lose_and_duplicate_nothing(test_store: TestStore) {
    let store = test_store.store.clone();
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let service = Arc::new(TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
    const TICKETS: u64 = 120;
    let writer = {
        let service = service.clone();
        tokio::spawn(async move {
            let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
            for number in 1..=TICKETS {
                let id = TicketId::new();
                service.execute_new(id, TicketCommand::Receive(sample::receive(number)), &context).await.unwrap();
                for command in [sample::acknowledge(), sample::investigate(Category::Complaint), sample::resolve()] {
                    service.execute(id, None, command, &context).await.unwrap();
                }
            }
        })
    };
    // One shared tail for every runner, as in the server; runners aborted mid-read leave it whole.
    let followed = FollowedLog::with_capacity(store.clone(), 64);
    let spawn_runners = || {
        let view = tokio::spawn(ticket_projections::run(
            TicketView::new(store.clone()),
            followed.clone(),
            database.clone(),
            Arc::default(),
            CancellationToken::new(),
        ));
        let stats = tokio::spawn(ticket_projections::run(
            Statistics::new(store.clone()),
            followed.clone(),
            database.clone(),
            Arc::default(),
            CancellationToken::new(),
        ));
        (view, stats)
    };
    let mut kills = 0;
    while !writer.is_finished() || kills < 5 {
        let (view, stats) = spawn_runners();
        // A different moment each time: 1 to 23 ms into the runners' work.
        tokio::time::sleep(Duration::from_millis(1 + (kills * 7) % 23)).await;
        view.abort();
        stats.abort();
        let _ = view.await;
        let _ = stats.await;
        kills += 1;
    }
    writer.await.unwrap();

    let shutdown = CancellationToken::new();
    let (view_status, view_runner) =
        ticket_projections::spawn(TicketView::new(store.clone()), followed.clone(), database.clone(), shutdown.clone());
    let (stats_status, stats_runner) =
        ticket_projections::spawn(Statistics::new(store.clone()), followed.clone(), database.clone(), shutdown.clone());
    let target = head(&database).await;
    for status in [&view_status, &stats_status] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while status.lock().unwrap().position < target {
            assert!(tokio::time::Instant::now() < deadline, "a projection stalled: {:?}", status.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    shutdown.cancel();
    let _ = view_runner.await;
    let _ = stats_runner.await;
    let live = dump(&database).await;
    let live_stats = dump_statistics(&database).await;
    assert_eq!(live.len() as u64, TICKETS);
    let today = chrono::Utc::now().date_naive();
    let query = ticket_projections::statistics::query::StatsQuery {
        from: today - chrono::Days::new(2),
        to: today + chrono::Days::new(2),
        period: ticket_projections::statistics::query::Period::Quarter,
        by: None,
    };
    let report = ticket_projections::statistics::query::report(&live_stats, &query);
    let counted = |f: fn(&ticket_projections::statistics::query::SummaryRow) -> i64| -> i64 {
        report.summary.iter().map(f).sum()
    };
    assert_eq!(counted(|r| r.received), TICKETS as i64, "{kills} kills");
    assert_eq!(counted(|r| r.complaints_resolved), TICKETS as i64, "{kills} kills");
    assert_eq!(report.summary.last().unwrap().open_at_end, TICKETS as i64);

    ticket_projections::rebuild(&TicketView::new(store.clone()), &store, &database).await.unwrap();
    ticket_projections::rebuild(&Statistics::new(store.clone()), &store, &database).await.unwrap();
    assert_eq!(live, dump(&database).await);
    assert_eq!(live_stats, dump_statistics(&database).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_runners_lose_and_duplicate_nothing() {
    killed_runners_lose_and_duplicate_nothing(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_runners_lose_and_duplicate_nothing() {
    let Some(test_store) = backends::postgres().await else { return };
    killed_runners_lose_and_duplicate_nothing(test_store).await;
}
