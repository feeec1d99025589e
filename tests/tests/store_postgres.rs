//! The store conformance suite on PostgreSQL, plus what only PostgreSQL has: transactions that
//! commit out of order.

use std::time::Duration;

use event_store::{ExpectedVersion, GlobalPosition, StreamId};
use serde_json::json;
use ticket_tests::backends;
use ticket_tests::conformance::{event, read_all_until};

ticket_tests::store_conformance_suite!(backends::postgres);

/// The same suite through the shared tail the server's projections read the log with.
mod shared_tail {
    ticket_tests::store_conformance_suite!(ticket_tests::backends::postgres_shared_tail);
}

/// The classic sequence problem: a transaction that took its place in the order early but
/// commits late. Readers must not pass its place before it commits, and must see its events
/// once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_transaction_holds_readers_back_until_it_commits() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let store = test_store.store.clone();
    let slow_stream = StreamId::parse("ticket-slow").unwrap();
    let fast_stream = StreamId::parse("ticket-fast").unwrap();

    let mut slow = postgres.pool().begin().await.unwrap();
    let slow_outcome = postgres
        .append_in(&mut slow, &slow_stream, ExpectedVersion(0), vec![event("Slow", json!({"i": 0}))])
        .await
        .unwrap();
    // Later transactions commit while the slow one is open.
    let fast = store.append(&fast_stream, ExpectedVersion(0), vec![event("Fast", json!({"i": 1}))]).await.unwrap();
    assert!(fast.positions[0] > slow_outcome.positions[0], "the slow transaction took the earlier place");
    let visible = store.read_all(GlobalPosition::START, 100).await.unwrap();
    assert!(visible.is_empty(), "a reader must not pass the open transaction's place: saw {visible:?}");

    tokio::time::sleep(Duration::from_millis(20)).await;
    slow.commit().await.unwrap();
    let visible = read_all_until(&store, GlobalPosition::START, 2).await;
    let types: Vec<&str> = visible.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["Slow", "Fast"], "after the commit both are seen, in position order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_append_leaves_nothing_and_blocks_no_one() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let stream = StreamId::parse("ticket-rollback").unwrap();
    let mut transaction = postgres.pool().begin().await.unwrap();
    postgres
        .append_in(&mut transaction, &stream, ExpectedVersion(0), vec![event("Gone", json!({"i": 0}))])
        .await
        .unwrap();
    // Two appends in one transaction get distinct positions.
    let second = StreamId::parse("ticket-rollback-2").unwrap();
    postgres
        .append_in(&mut transaction, &second, ExpectedVersion(0), vec![event("Gone2", json!({"i": 1}))])
        .await
        .unwrap();
    transaction.rollback().await.unwrap();
    assert_eq!(test_store.store.stream_version(&stream).await.unwrap(), 0);
    let kept =
        test_store.store.append(&stream, ExpectedVersion(0), vec![event("Kept", json!({"i": 2}))]).await.unwrap();
    let all = read_all_until(&test_store.store, GlobalPosition::START, 1).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].position, kept.positions[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_in_one_transaction_get_distinct_positions() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let mut transaction = postgres.pool().begin().await.unwrap();
    let a = postgres
        .append_in(
            &mut transaction,
            &StreamId::parse("ticket-a").unwrap(),
            ExpectedVersion(0),
            vec![event("A", json!({"i": 0})), event("A", json!({"i": 1}))],
        )
        .await
        .unwrap();
    let b = postgres
        .append_in(
            &mut transaction,
            &StreamId::parse("ticket-b").unwrap(),
            ExpectedVersion(0),
            vec![event("B", json!({"i": 2}))],
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(a.positions[0] < a.positions[1] && a.positions[1] < b.positions[0], "{a:?} {b:?}");
    let all = read_all_until(&test_store.store, GlobalPosition::START, 3).await;
    assert_eq!(all.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), vec!["A", "A", "B"]);
}

#[tokio::test]
async fn stored_events_cannot_be_altered_or_deleted() {
    let Some(test_store) = backends::postgres().await else { return };
    let id = StreamId::parse("ticket-immutable").unwrap();
    test_store.store.append(&id, ExpectedVersion(0), vec![event("A", json!({"i": 0}))]).await.unwrap();
    let pool = test_store.postgres.as_ref().unwrap().pool();
    for statement in ["UPDATE events SET payload = '{}'", "DELETE FROM events", "TRUNCATE events"] {
        let error = sqlx::query(statement).execute(pool).await.unwrap_err();
        assert!(error.to_string().contains("events are immutable"), "{statement}: {error}");
    }
    assert_eq!(test_store.store.stream_version(&id).await.unwrap(), 1);
}

/// The URL of another database on the same server (`postgres`), as another application's.
fn other_database_url() -> String {
    let url = backends::postgres_url().expect("PostgreSQL is not skipped here");
    let (server, _database) = url.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/postgres")
}

/// A transaction that holds a transaction id open in another database of the server (another
/// application idle in transaction) must not hold this store's readers back: they wait only
/// for this store's own appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_in_another_database_does_not_hold_readers_back() {
    use sqlx::Connection;
    let Some(test_store) = backends::postgres().await else { return };
    let store = test_store.store.clone();
    let mut other = sqlx::PgConnection::connect(&other_database_url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    let _xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut other).await.unwrap();

    let stream = StreamId::parse("ticket-not-held-back").unwrap();
    store.append(&stream, ExpectedVersion(0), vec![event("Seen", json!({"i": 0}))]).await.unwrap();
    let visible = store.read_all(GlobalPosition::START, 100).await.unwrap();
    assert_eq!(visible.len(), 1, "the committed append is visible at once, whatever other databases hold open");
    assert_eq!(test_store.store.oldest_append_in_flight(), None, "the other database's transaction is not ours");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
}

/// The same within this database: a session of another program (no append lock) with a
/// transaction id open does not hold readers back either — only this store's appends do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_transaction_in_the_same_database_does_not_hold_readers_back() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let mut foreign = postgres.pool().begin().await.unwrap();
    let _xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut *foreign).await.unwrap();
    let stream = StreamId::parse("ticket-beside-foreign").unwrap();
    test_store.store.append(&stream, ExpectedVersion(0), vec![event("Seen", json!({"i": 0}))]).await.unwrap();
    let visible = test_store.store.read_all(GlobalPosition::START, 100).await.unwrap();
    assert_eq!(visible.len(), 1);
    foreign.rollback().await.unwrap();
}

/// An append of this store in flight is shown (backend, database, age), holds readers back,
/// and is gone once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_flight_is_reported_with_its_backend_and_age() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let store = test_store.store.clone();
    let mut slow = postgres.pool().begin().await.unwrap();
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *slow).await.unwrap();
    postgres
        .append_in(
            &mut slow,
            &StreamId::parse("ticket-in-flight").unwrap(),
            ExpectedVersion(0),
            vec![event("Slow", json!({"i": 0}))],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .append(&StreamId::parse("ticket-after").unwrap(), ExpectedVersion(0), vec![event("Fast", json!({}))])
        .await
        .unwrap();
    assert!(store.read_all(GlobalPosition::START, 100).await.unwrap().is_empty(), "readers wait for our own append");
    let in_flight = store.oldest_append_in_flight().expect("the open append is reported");
    assert_eq!(in_flight.backend, backend);
    let url = backends::postgres_url().unwrap();
    let database = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    assert_eq!(in_flight.database, database);
    assert!(in_flight.age >= Duration::from_millis(250), "{in_flight:?}");
    slow.commit().await.unwrap();
    assert_eq!(read_all_until(&store, GlobalPosition::START, 2).await.len(), 2);
    assert_eq!(store.oldest_append_in_flight(), None);
}

/// A transaction that wrote something else first and then appends could commit below a place
/// a reader has passed; the store refuses such an append instead of risking a skipped event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_after_another_write_in_its_transaction_is_refused() {
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let mut transaction = postgres.pool().begin().await.unwrap();
    let _xid: String =
        sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut *transaction).await.unwrap();
    let error = postgres
        .append_in(
            &mut transaction,
            &StreamId::parse("ticket-late-lock").unwrap(),
            ExpectedVersion(0),
            vec![event("Late", json!({}))],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, event_store::StoreError::InvalidInput(_)), "{error}");
    transaction.rollback().await.unwrap();
}

/// A running transaction's 32-bit id is widened against the snapshot's `xmax` whichever side of
/// it the id is on (a running append's id may be above `xmax`, which counts completed ones):
/// widened wrongly, the horizon fell to nothing and readers saw an empty log for a moment.
#[tokio::test]
async fn transaction_ids_are_widened_on_either_side_of_the_snapshot() {
    let Some(test_store) = backends::postgres().await else { return };
    let pool = test_store.postgres.as_ref().unwrap().pool();
    let epoch = 3i64 << 32;
    for (xmax, xid32, full) in [
        (epoch + 1_000, 995, epoch + 995),
        (epoch + 1_000, 1_005, epoch + 1_005),
        (epoch + 1_000, 1_000, epoch + 1_000),
        (epoch + 2, (1i64 << 32) - 3, epoch - 3),
        (epoch + (1i64 << 32) - 2, 3, epoch + (1i64 << 32) + 3),
    ] {
        let sql = format!(
            "SELECT {}",
            event_store::postgres::WIDEN_XID_SQL
                .replace("{xmax}", &format!("{xmax}::bigint"))
                .replace("{xid}", &format!("{xid32}::bigint"))
        );
        let widened: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap();
        assert_eq!(widened, full, "xmax {xmax}, xid {xid32}");
    }
}

/// A committed event stays visible while an append of ours that began after a transaction
/// elsewhere is still in flight (its id may then be above the snapshot's `xmax`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_stay_visible_beside_an_append_in_flight() {
    use sqlx::Connection;
    let Some(test_store) = backends::postgres().await else { return };
    let postgres = test_store.postgres.clone().unwrap();
    let store = test_store.store.clone();
    let first = StreamId::parse("ticket-committed-first").unwrap();
    store.append(&first, ExpectedVersion(0), vec![event("First", json!({}))]).await.unwrap();
    let mut other = sqlx::PgConnection::connect(&other_database_url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    let _: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut other).await.unwrap();
    let mut slow = postgres.pool().begin().await.unwrap();
    postgres
        .append_in(
            &mut slow,
            &StreamId::parse("ticket-in-flight-late").unwrap(),
            ExpectedVersion(0),
            vec![event("Late", json!({}))],
        )
        .await
        .unwrap();
    for _ in 0..20 {
        let visible = store.read_all(GlobalPosition::START, 100).await.unwrap();
        assert_eq!(visible.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), vec!["First"]);
    }
    slow.rollback().await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
}
