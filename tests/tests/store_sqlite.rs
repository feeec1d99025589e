//! The store conformance suite on embedded SQLite, plus what only SQLite has.

use ticket_tests::backends;

ticket_tests::store_conformance_suite!(backends::sqlite);

/// The same suite through the shared tail the server's projections read the log with.
mod shared_tail {
    ticket_tests::store_conformance_suite!(ticket_tests::backends::sqlite_shared_tail);
}

#[tokio::test]
async fn stored_events_cannot_be_altered_or_deleted() {
    let test_store = backends::sqlite().await.unwrap();
    let id = event_store::StreamId::parse("ticket-immutable").unwrap();
    let event = ticket_tests::conformance::event("A", serde_json::json!({"i": 0}));
    test_store.store.append(&id, event_store::ExpectedVersion(0), vec![event]).await.unwrap();
    let pool = test_store.sqlite.as_ref().unwrap().write_pool();
    let update = sqlx::query("UPDATE events SET payload = '{}'").execute(pool).await.unwrap_err();
    assert!(update.to_string().contains("events are immutable"), "{update}");
    let delete = sqlx::query("DELETE FROM events").execute(pool).await.unwrap_err();
    assert!(delete.to_string().contains("events are immutable"), "{delete}");
    assert_eq!(test_store.store.stream_version(&id).await.unwrap(), 1);
}

#[tokio::test]
async fn the_file_is_durable_and_reopens_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/data/events.db");
    let id = event_store::StreamId::parse("ticket-reopen").unwrap();
    {
        let store = event_store::sqlite::SqliteStore::open(&path, Default::default()).await.unwrap();
        use event_store::EventStore;
        let event = ticket_tests::conformance::event("A", serde_json::json!({"i": 0}));
        store.append(&id, event_store::ExpectedVersion(0), vec![event]).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.read_pool()).await.unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(store.write_pool()).await.unwrap();
        assert_eq!(synchronous, 2, "synchronous = FULL");
    }
    let reopened = event_store::open(&format!("sqlite:{}", path.display())).await.unwrap().store;
    assert_eq!(reopened.stream_version(&id).await.unwrap(), 1);
}
