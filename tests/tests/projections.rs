//! Read models built live equal the same read models rebuilt from zero, for random histories,
//! on both stores; and each row is the domain's own fold of its ticket.

use std::sync::Arc;
use std::time::Duration;

use event_store::{Database, GlobalPosition, SharedStore};
use proptest::prelude::*;
use ticket_app::{CommandContext, ServiceOptions, SystemClock, TicketService};
use ticket_domain::vocabulary::{Actor, Category, Role, TicketId};
use ticket_domain::{TicketCommand, sample};
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

fn database_of(test_store: &TestStore) -> Database {
    match (&test_store.sqlite, &test_store.postgres) {
        (Some(sqlite), _) => Database::Sqlite { write: sqlite.write_pool().clone(), read: sqlite.read_pool().clone() },
        (_, Some(postgres)) => Database::Postgres(postgres.pool().clone()),
        _ => unreachable!("a test store has a backend"),
    }
}

async fn head(store: &SharedStore) -> GlobalPosition {
    let mut position = GlobalPosition::START;
    loop {
        let page = store.read_all(position, 1_000).await.unwrap();
        let Some(last) = page.last() else { return position };
        position = last.position;
    }
}

async fn live_equals_rebuilt(test_store: TestStore) {
    let store = test_store.store.clone();
    let database = database_of(&test_store);
    ticket_projections::migrate(&database).await.unwrap();
    let shutdown = CancellationToken::new();
    let (status, runner) =
        ticket_projections::spawn(TicketView::new(store.clone()), store.clone(), database.clone(), shutdown.clone());
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
                let target = head(&store).await;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while status.lock().unwrap().position < target {
                    if tokio::time::Instant::now() > deadline {
                        return Err(format!("the live projection stalled: {:?}", status.lock().unwrap()));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let live = dump(&database).await;
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
                Ok(())
            })
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        Ok(())
    });
    shutdown.cancel();
    let _ = runner.await;
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(status.lock().unwrap().failed.is_none());
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
