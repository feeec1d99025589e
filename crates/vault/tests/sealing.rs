//! The vault against a real SQLite store: what is sealed opens to what was given, nothing
//! personal is stored in the clear, a sealed part moved to another event does not open, and
//! an erased ticket reads as erased for good.

use std::sync::Arc;

use event_store::sqlite::{SqliteOptions, SqliteStore};
use event_store::{Database, EventMetadata, EventStore, ExpectedVersion, Json, NewEvent, SharedStore, StreamId};
use proptest::prelude::*;
use serde_json::json;
use ticket_vault::{Keks, SealedStore, Vault};

async fn open() -> (tempfile::TempDir, SharedStore, Arc<Vault>, SealedStore, Database) {
    let dir = tempfile::tempdir().unwrap();
    let raw = SqliteStore::open(&dir.path().join("events.db"), SqliteOptions::default()).await.unwrap();
    let database = Database::Sqlite { write: raw.write_pool().clone(), read: raw.read_pool().clone() };
    ticket_vault::migrate(&database).await.unwrap();
    let vault = Arc::new(Vault::new(database.clone(), Keks::generate("test")));
    let raw: SharedStore = Arc::new(raw);
    let sealed = SealedStore::new(raw.clone(), vault.clone());
    (dir, raw, vault, sealed, database)
}

fn event(payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "AgentReplied".into(),
        schema_version: 1,
        occurred_at: chrono::Utc::now(),
        metadata: EventMetadata {
            actor: Json::from_value(&json!({"kind": "system", "component": "test"})),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
        },
        payload: Json::from_value(&payload),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any personal text is stored sealed and read back exactly; the rest of the payload is untouched.
    #[test]
    fn what_is_sealed_opens_to_what_was_given(body in "[a-zA-Z0-9 áéíóöőúüű.,!?\"\\\\]{1,80}", extra in 0u32..1000) {
        runtime().block_on(async {
            let (_dir, raw, _vault, sealed, _) = open().await;
            let stream = StreamId::parse(&format!("ticket-{}", uuid::Uuid::now_v7())).unwrap();
            let payload = json!({"personal": {"body": body}, "extra": extra});
            sealed.append(&stream, ExpectedVersion(0), vec![event(payload.clone())]).await.unwrap();
            let stored = raw.read_stream(&stream, 0, 10).await.unwrap();
            let text = stored[0].payload.get();
            let escaped = serde_json::to_string(&body).unwrap();
            prop_assert!(body.len() < 6 || !text.contains(escaped.trim_matches('"')), "{}", text);
            prop_assert!(stored[0].payload.to_value()["personal"].as_str().unwrap().starts_with(ticket_vault::SEALED_PREFIX));
            prop_assert_eq!(&stored[0].payload.to_value()["extra"], &json!(extra));
            let read = sealed.read_stream(&stream, 0, 10).await.unwrap();
            prop_assert_eq!(read[0].payload.to_value(), payload);
            Ok(())
        })?;
    }
}

#[test]
fn a_sealed_part_moved_to_another_event_does_not_open_and_an_erased_ticket_stays_erased() {
    runtime().block_on(async {
        let (_dir, raw, vault, sealed, database) = open().await;
        let ticket = uuid::Uuid::now_v7();
        let stream = StreamId::parse(&format!("ticket-{ticket}")).unwrap();
        let first = json!({"personal": {"body": "Kovács Anna írja"}});
        sealed.append(&stream, ExpectedVersion(0), vec![event(first.clone()), event(first)]).await.unwrap();
        let mut stored = raw.read_stream(&stream, 0, 10).await.unwrap();
        // The second event's sealed part, copied onto the first: bound to its event, it fails.
        stored[0].payload = stored[1].payload.clone();
        let error = vault.open(vec![stored[0].clone()]).await.unwrap_err();
        assert!(error.to_string().contains("does not open"), "{error}");
        // Erased: every personal part reads as erased, and nothing personal can be added.
        assert!(vault.erase(ticket).await.unwrap());
        assert!(!vault.erase(ticket).await.unwrap(), "erased once");
        let read = sealed.read_stream(&stream, 0, 10).await.unwrap();
        assert_eq!(read[0].payload.to_value()["personal"]["body"], ticket_domain::event::ERASED);
        let refused = sealed.append(&stream, ExpectedVersion(2), vec![event(json!({"personal": {"body": "x"}}))]).await;
        assert!(refused.is_err());
        // A new vault (another instance, or a restart) reads the same: the key is gone for good.
        let again = SealedStore::new(raw.clone(), Arc::new(Vault::new(database, Keks::generate("other"))));
        let read = again.read_stream(&stream, 0, 10).await.unwrap();
        assert_eq!(read[1].payload.to_value()["personal"]["body"], ticket_domain::event::ERASED);
    });
}
