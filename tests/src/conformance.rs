//! The event store conformance suite: every backend runs every test here, through the
//! [`EventStore`] trait only. A new backend is done when `store_conformance_suite!` passes for it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use event_store::*;
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// Instantiates the suite for one backend factory (`async fn() -> Option<TestStore>`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($factory:path) => {
        $crate::store_conformance_suite!(@each $factory;
            appended_events_read_back_exactly,
            a_stale_expected_version_is_a_conflict_and_writes_nothing,
            an_expected_version_ahead_of_the_stream_is_a_conflict,
            appending_the_same_events_again_stores_them_once,
            an_event_id_reused_elsewhere_is_refused,
            invalid_appends_are_refused_whole,
            read_all_follows_the_global_order_from_a_position,
            racing_appends_to_one_stream_let_exactly_one_win,
            concurrent_writers_and_a_reader_see_every_event_once_in_order,
            a_subscription_delivers_events_as_they_commit,
            a_subscription_batch_holds_what_was_read_and_what_committed_since,
            sequences_are_unique_and_increasing_under_concurrency,
            the_store_holds_exactly_what_a_model_of_it_holds,
            a_crowd_of_appends_gets_each_its_own_answer,
            followers_of_a_shared_tail_each_see_every_event_once_in_order,
            a_shared_tail_answers_what_the_store_answers,
        );
    };
    (@each $factory:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::$name(test_store.store.clone()).await;
            }
        )+
    };
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(second)
}

/// A new event whose payload names its stream and index, so a mix-up shows.
pub fn event(event_type: &str, marker: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        occurred_at: at(marker.get("i").and_then(|i| i.as_i64()).unwrap_or(0)),
        metadata: EventMetadata {
            actor: Json::from_value(&json!({"kind": "staff", "name": "kata", "role": "agent"})),
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
        },
        payload: Json::from_value(&json!({"marker": marker, "personal": {"name": "Kovács Anna"}})),
    }
}

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn unique_stream(prefix: &str) -> StreamId {
    stream(&format!("{prefix}-{}", Uuid::now_v7().simple()))
}

async fn read_whole_stream(store: &SharedStore, id: &StreamId) -> Vec<RecordedEvent> {
    store.read_stream(id, 0, READ_EVENTS_MAX).await.unwrap()
}

async fn read_everything(store: &SharedStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = store.read_all(after, 500).await.unwrap();
        let Some(last) = page.last() else { return all };
        after = last.position;
        all.extend(page);
    }
}

/// Reads the global order after `after` until at least `count` events are visible. On
/// PostgreSQL a committed event becomes visible once every older transaction in the cluster
/// has finished (other tests' included), so "right after my commit" may be a moment later.
pub async fn read_all_until(store: &SharedStore, after: GlobalPosition, count: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut next = after;
    loop {
        let page = store.read_all(next, 500).await.unwrap();
        if let Some(last) = page.last() {
            next = last.position;
        }
        let empty = page.is_empty();
        seen.extend(page);
        if seen.len() >= count || tokio::time::Instant::now() > deadline {
            return seen;
        }
        if empty {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub async fn appended_events_read_back_exactly(store: SharedStore) {
    let id = unique_stream("ticket");
    let events: Vec<NewEvent> = (0..3).map(|i| event(&format!("Type{i}"), json!({"i": i}))).collect();
    let before = Utc::now() - chrono::Duration::seconds(5);
    let outcome = store.append(&id, ExpectedVersion::NO_STREAM, events.clone()).await.unwrap();
    assert_eq!(outcome.version, 3);
    assert_eq!(outcome.positions.len(), 3);
    assert!(outcome.positions.windows(2).all(|p| p[0] < p[1]), "positions increase: {:?}", outcome.positions);
    assert!(!outcome.already_stored);

    let stored = read_whole_stream(&store, &id).await;
    assert_eq!(stored.len(), 3);
    for (index, (stored, sent)) in stored.iter().zip(&events).enumerate() {
        assert_eq!(stored.stream_id, id);
        assert_eq!(stored.version, index as u64 + 1);
        assert_eq!(stored.position, outcome.positions[index]);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.schema_version, sent.schema_version);
        assert_eq!(stored.occurred_at, sent.occurred_at);
        assert_eq!(stored.metadata, sent.metadata);
        assert_eq!(stored.payload, sent.payload);
        assert!(stored.recorded_at >= before && stored.recorded_at <= Utc::now() + chrono::Duration::seconds(5));
    }
    assert_eq!(store.stream_version(&id).await.unwrap(), 3);
    assert_eq!(store.stream_version(&unique_stream("nothing")).await.unwrap(), 0);
    // Paging a stream.
    let tail = store.read_stream(&id, 1, 1).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
}

pub async fn a_stale_expected_version_is_a_conflict_and_writes_nothing(store: SharedStore) {
    let id = unique_stream("ticket");
    store.append(&id, ExpectedVersion::NO_STREAM, vec![event("A", json!({"i": 0}))]).await.unwrap();
    let error = store.append(&id, ExpectedVersion::NO_STREAM, vec![event("B", json!({"i": 1}))]).await.unwrap_err();
    match error {
        StoreError::VersionConflict { stream, expected, actual } => {
            assert_eq!((stream, expected, actual), (id.clone(), 0, 1));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let stored = read_whole_stream(&store, &id).await;
    assert_eq!(stored.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), vec!["A"]);
}

pub async fn an_expected_version_ahead_of_the_stream_is_a_conflict(store: SharedStore) {
    let id = unique_stream("ticket");
    let error = store.append(&id, ExpectedVersion(3), vec![event("A", json!({"i": 0}))]).await.unwrap_err();
    assert!(matches!(error, StoreError::VersionConflict { expected: 3, actual: 0, .. }), "{error:?}");
    assert!(read_whole_stream(&store, &id).await.is_empty(), "no gap may be created in a stream");
}

pub async fn appending_the_same_events_again_stores_them_once(store: SharedStore) {
    let id = unique_stream("ticket");
    let events = vec![event("A", json!({"i": 0})), event("B", json!({"i": 1}))];
    let first = store.append(&id, ExpectedVersion::NO_STREAM, events.clone()).await.unwrap();
    let again = store.append(&id, ExpectedVersion::NO_STREAM, events.clone()).await.unwrap();
    assert!(again.already_stored);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.version, 2);
    assert_eq!(read_whole_stream(&store, &id).await.len(), 2);
    // The next append after a retry still works from version 2.
    store.append(&id, ExpectedVersion(2), vec![event("C", json!({"i": 2}))]).await.unwrap();
    assert_eq!(store.stream_version(&id).await.unwrap(), 3);
}

pub async fn an_event_id_reused_elsewhere_is_refused(store: SharedStore) {
    let first = unique_stream("ticket");
    let second = unique_stream("ticket");
    let reused = event("A", json!({"i": 0}));
    store.append(&first, ExpectedVersion::NO_STREAM, vec![reused.clone()]).await.unwrap();
    let error = store.append(&second, ExpectedVersion::NO_STREAM, vec![reused.clone()]).await.unwrap_err();
    assert!(matches!(error, StoreError::DuplicateEvent { event_id } if event_id == reused.event_id), "{error:?}");
    assert!(read_whole_stream(&store, &second).await.is_empty());
    // Part of an earlier append, with a new event beside it: not a retry either.
    let error = store
        .append(&first, ExpectedVersion::NO_STREAM, vec![reused.clone(), event("B", json!({"i": 1}))])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::DuplicateEvent { .. } | StoreError::VersionConflict { .. }), "{error:?}");
    assert_eq!(read_whole_stream(&store, &first).await.len(), 1);
}

pub async fn invalid_appends_are_refused_whole(store: SharedStore) {
    let id = unique_stream("ticket");
    let empty = store.append(&id, ExpectedVersion::NO_STREAM, vec![]).await.unwrap_err();
    assert!(matches!(empty, StoreError::InvalidInput(_)), "{empty:?}");
    let too_many: Vec<_> = (0..APPEND_EVENTS_MAX + 1).map(|i| event("A", json!({"i": i}))).collect();
    let error = store.append(&id, ExpectedVersion::NO_STREAM, too_many).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    let twin = event("A", json!({"i": 0}));
    let error = store.append(&id, ExpectedVersion::NO_STREAM, vec![twin.clone(), twin]).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error:?}");
    assert!(read_whole_stream(&store, &id).await.is_empty());
    assert!(StreamId::parse("").is_err());
    assert!(StreamId::parse("ticket 1").is_err());
    assert!(StreamId::parse(&"x".repeat(StreamId::CHARS_MAX + 1)).is_err());
}

pub async fn read_all_follows_the_global_order_from_a_position(store: SharedStore) {
    let a = unique_stream("a");
    let b = unique_stream("b");
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    store.append(&a, ExpectedVersion(0), vec![event("A1", json!({"i": 1}))]).await.unwrap();
    store
        .append(&b, ExpectedVersion(0), vec![event("B1", json!({"i": 2})), event("B2", json!({"i": 3}))])
        .await
        .unwrap();
    store.append(&a, ExpectedVersion(1), vec![event("A2", json!({"i": 4}))]).await.unwrap();
    let all = read_all_until(&store, start, 4).await;
    let types: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["A1", "B1", "B2", "A2"]);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let after_first = store.read_all(all[0].position, 2).await.unwrap();
    assert_eq!(after_first.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), vec!["B1", "B2"]);
    assert!(store.read_all(all[3].position, 100).await.unwrap().is_empty());
}

pub async fn racing_appends_to_one_stream_let_exactly_one_win(store: SharedStore) {
    let id = unique_stream("ticket");
    store.append(&id, ExpectedVersion(0), vec![event("Received", json!({"i": 0}))]).await.unwrap();
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let id = id.clone();
            tokio::spawn(
                async move { store.append(&id, ExpectedVersion(1), vec![event("Racer", json!({"i": i}))]).await },
            )
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(outcome) => {
                won += 1;
                assert_eq!(outcome.version, 2);
            }
            Err(StoreError::VersionConflict { actual: 2, .. }) => {}
            Err(other) => panic!("a racer failed with {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(read_whole_stream(&store, &id).await.len(), 2);
}

pub async fn concurrent_writers_and_a_reader_see_every_event_once_in_order(store: SharedStore) {
    const WRITERS: usize = 8;
    const APPENDS_PER_WRITER: usize = 60;
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                // Each writer keeps three streams, appending one to three events at a time.
                let streams: Vec<StreamId> = (0..3).map(|_| unique_stream("w")).collect();
                let mut versions = [0u64; 3];
                for append in 0..APPENDS_PER_WRITER {
                    let slot = append % 3;
                    let events: Vec<_> =
                        (0..1 + append % 3).map(|i| event("W", json!({"writer": writer, "i": i}))).collect();
                    ids.extend(events.iter().map(|e| e.event_id));
                    let count = events.len() as u64;
                    store.append(&streams[slot], ExpectedVersion(versions[slot]), events).await.unwrap();
                    versions[slot] += count;
                }
                ids
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = start;
            let expected = WRITERS * (APPENDS_PER_WRITER / 3) * (1 + 2 + 3);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < expected && tokio::time::Instant::now() < deadline {
                let page = store.read_all(after, 37).await.unwrap();
                if let Some(last) = page.last() {
                    after = last.position;
                }
                seen.extend(page.into_iter().map(|e| (e.position, e.event_id)));
            }
            seen
        })
    };
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let seen = reader.await.unwrap();
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "the reader saw positions out of order");
    let seen_ids: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    let unique: HashSet<Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "the reader saw an event twice");
    assert_eq!(unique, written, "the reader missed events (or saw foreign ones)");
}

pub async fn a_subscription_delivers_events_as_they_commit(store: SharedStore) {
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    let id = unique_stream("ticket");
    store.append(&id, ExpectedVersion(0), vec![event("Before", json!({"i": 0}))]).await.unwrap();
    let mut subscription = Subscription::new(store.clone(), start);
    let first = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
    assert_eq!(first.event_type, "Before", "history first");
    let waiting = tokio::spawn(async move {
        let event = subscription.next().await.unwrap();
        (event, subscription)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "nothing new yet: the subscription waits");
    store.append(&id, ExpectedVersion(1), vec![event("After", json!({"i": 1}))]).await.unwrap();
    let (live, _subscription) = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    assert_eq!(live.event_type, "After");
    assert_eq!(live.version, 2);
}

/// A projection runner takes one event, waits its pace, then takes the rest as a batch: the
/// batch must hold what was read before the wait *and* what committed during it (else those
/// wait a whole extra pace), in order, and never more than the batch size.
pub async fn a_subscription_batch_holds_what_was_read_and_what_committed_since(store: SharedStore) {
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    let id = unique_stream("ticket");
    let before: Vec<_> = (0..3).map(|i| event("Before", json!({"i": i}))).collect();
    store.append(&id, ExpectedVersion(0), before).await.unwrap();
    read_all_until(&store, start, 3).await;
    let mut subscription = Subscription::new(store.clone(), start).with_batch_size(4);
    let first = subscription.next().await.unwrap();
    assert_eq!(first.version, 1);
    let during: Vec<_> = (3..6).map(|i| event("During", json!({"i": i}))).collect();
    store.append(&id, ExpectedVersion(3), during).await.unwrap();
    assert_eq!(read_all_until(&store, start, 6).await.len(), 6, "all six are visible");
    let batch = subscription.next_batch_now().await.unwrap();
    let versions: Vec<u64> = batch.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![2, 3, 4, 5], "the two read before the wait, then what committed since, up to 4");
    let rest = subscription.next_batch_now().await.unwrap();
    assert_eq!(rest.iter().map(|e| e.version).collect::<Vec<_>>(), vec![6]);
    assert!(subscription.next_batch_now().await.unwrap().is_empty());
}

pub async fn sequences_are_unique_and_increasing_under_concurrency(store: SharedStore) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut values = Vec::new();
                for _ in 0..25 {
                    values.push(store.next_sequence_value(Sequence::TicketNumber).await.unwrap());
                }
                values
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let values = task.await.unwrap();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "each caller sees increasing numbers");
        all.extend(values);
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 200);
    assert!(all.iter().all(|n| *n >= 1));
}

/// One step of the store model test.
#[derive(Debug, Clone)]
enum Step {
    /// Append `events` events to stream `stream`, claiming the stream is at its true version
    /// plus `skew` (0: right; otherwise a conflict).
    Append { stream: usize, events: usize, skew: i8 },
    /// Repeat the last successful append exactly.
    Retry,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (0usize..4, 1usize..4, prop_oneof![4 => Just(0i8), 1 => -2i8..3]).prop_map(|(stream, events, skew)| Step::Append { stream, events, skew }),
        1 => Just(Step::Retry),
    ];
    prop::collection::vec(step, 1..25)
}

pub async fn the_store_holds_exactly_what_a_model_of_it_holds(store: SharedStore) {
    let store = Arc::new(store);
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&steps(), |steps| {
        let store = store.clone();
        // proptest drives a synchronous closure; run each case on the test's runtime.
        let outcome = tokio::task::block_in_place(|| handle.block_on(run_model_case(&store, steps)));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

async fn run_model_case(store: &SharedStore, steps: Vec<Step>) -> Result<(), String> {
    let streams: Vec<StreamId> = (0..4).map(|_| unique_stream("model")).collect();
    let mut model: BTreeMap<usize, Vec<Uuid>> = BTreeMap::new();
    let mut accepted_in_order: Vec<Uuid> = Vec::new();
    let mut last_success: Option<(usize, u64, Vec<NewEvent>)> = None;
    let start = read_everything(store).await.last().map_or(GlobalPosition::START, |e| e.position);
    for step in steps {
        match step {
            Step::Append { stream, events, skew } => {
                let actual = model.get(&stream).map_or(0, |ids| ids.len() as u64);
                let claimed = (actual as i64 + i64::from(skew)).max(0) as u64;
                let batch: Vec<NewEvent> = (0..events).map(|i| event("M", json!({"i": i}))).collect();
                let result = store.append(&streams[stream], ExpectedVersion(claimed), batch.clone()).await;
                match (claimed == actual, result) {
                    (true, Ok(outcome)) => {
                        if outcome.version != actual + events as u64 {
                            return Err(format!("version {} after appending {events} to {actual}", outcome.version));
                        }
                        model.entry(stream).or_default().extend(batch.iter().map(|e| e.event_id));
                        accepted_in_order.extend(batch.iter().map(|e| e.event_id));
                        last_success = Some((stream, claimed, batch));
                    }
                    (false, Err(StoreError::VersionConflict { actual: reported, .. })) if reported == actual => {}
                    (right, other) => {
                        return Err(format!("claimed {claimed} of {actual} (right: {right}) gave {other:?}"));
                    }
                }
            }
            Step::Retry => {
                let Some((stream, claimed, batch)) = last_success.clone() else { continue };
                match store.append(&streams[stream], ExpectedVersion(claimed), batch).await {
                    Ok(outcome) if outcome.already_stored => {}
                    other => return Err(format!("retrying a stored append gave {other:?}")),
                }
            }
        }
    }
    for (index, id) in streams.iter().enumerate() {
        let stored: Vec<Uuid> = read_whole_stream(store, id).await.iter().map(|e| e.event_id).collect();
        let expected = model.get(&index).cloned().unwrap_or_default();
        if stored != expected {
            return Err(format!("stream {index} holds {stored:?}, the model {expected:?}"));
        }
    }
    let mine: HashSet<Uuid> = accepted_in_order.iter().copied().collect();
    let global: Vec<Uuid> = read_all_until(store, start, mine.len())
        .await
        .into_iter()
        .map(|e| e.event_id)
        .filter(|id| mine.contains(id))
        .collect();
    if global != accepted_in_order {
        return Err("the global order differs from the order the appends were accepted in".into());
    }
    Ok(())
}

/// Concurrent appends are written in shared batches (group commit). Each caller must still get
/// its own exact answer: accepted, conflict, retry of a stored append, or a reused event id.
pub async fn a_crowd_of_appends_gets_each_its_own_answer(store: SharedStore) {
    const STREAMS: usize = 12;
    let mut setup = Vec::new();
    for i in 0..STREAMS {
        let id = unique_stream("crowd");
        let first = event("First", json!({"i": i}));
        store.append(&id, ExpectedVersion(0), vec![first.clone()]).await.unwrap();
        setup.push((id, first));
    }
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Accepted,
        Conflict,
        AlreadyStored,
        Duplicate,
    }
    let mut tasks = Vec::new();
    for (id, first) in &setup {
        let cases = [
            (
                id.clone(),
                ExpectedVersion(1),
                vec![event("Second", json!({"i": 1})), event("Third", json!({"i": 2}))],
                Expect::Accepted,
            ),
            (unique_stream("crowd-wrong"), ExpectedVersion(5), vec![event("Wrong", json!({"i": 3}))], Expect::Conflict),
            (id.clone(), ExpectedVersion(0), vec![first.clone()], Expect::AlreadyStored),
            (unique_stream("crowd-dup"), ExpectedVersion(0), vec![first.clone()], Expect::Duplicate),
        ];
        for (stream, expected, events, expect) in cases {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let result = store.append(&stream, expected, events).await;
                (stream, expect, result)
            }));
        }
    }
    for task in tasks {
        let (stream, expect, result) = task.await.unwrap();
        match (expect, &result) {
            (Expect::Accepted, Ok(outcome)) if !outcome.already_stored && outcome.version == 3 => {}
            (Expect::Conflict, Err(StoreError::VersionConflict { expected: 5, actual: 0, .. })) => {}
            (Expect::AlreadyStored, Ok(outcome)) if outcome.already_stored && outcome.version == 1 => {}
            (Expect::Duplicate, Err(StoreError::DuplicateEvent { .. })) => {}
            _ => panic!("{stream}: expected {expect:?}, got {result:?}"),
        }
    }
    for (id, first) in &setup {
        let stored = read_whole_stream(&store, id).await;
        let types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, vec!["First", "Second", "Third"], "{id}");
        assert_eq!(stored[0].event_id, first.event_id);
    }
}

/// Several followers read the global order through one [`SharedTail`] (as a server's projections
/// do) while writers append: each sees every event exactly once, in order, whether it starts
/// with the others, late, or with another page size; the tail is small, so followers fall out of
/// it and come back.
pub async fn followers_of_a_shared_tail_each_see_every_event_once_in_order(store: SharedStore) {
    const WRITERS: usize = 4;
    const APPENDS_PER_WRITER: usize = 40;
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    let tail: SharedStore = Arc::new(SharedTail::new(store.clone(), 20));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let stream = unique_stream("w");
                let mut version = 0;
                for append in 0..APPENDS_PER_WRITER {
                    let events: Vec<_> =
                        (0..1 + append % 3).map(|i| event("W", json!({"writer": writer, "i": i}))).collect();
                    ids.extend(events.iter().map(|e| e.event_id));
                    let count = events.len() as u64;
                    store.append(&stream, ExpectedVersion(version), events).await.unwrap();
                    version += count;
                }
                ids
            })
        })
        .collect();
    let expected = WRITERS * (0..APPENDS_PER_WRITER).map(|append| 1 + append % 3).sum::<usize>();
    let followers: Vec<_> = [(0u64, 7usize), (0, 7), (0, 3), (30, 11), (60, 50)]
        .into_iter()
        .map(|(delay_ms, page)| {
            let tail = tail.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let mut subscription = Subscription::new(tail, start).with_batch_size(page);
                let mut seen = Vec::new();
                while seen.len() < expected {
                    let next = tokio::time::timeout(Duration::from_secs(20), subscription.next()).await;
                    let event = next.expect("a follower waited 20 s for an event").unwrap();
                    seen.push((event.position, event.event_id));
                }
                seen
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    assert_eq!(written.len(), expected);
    for (index, follower) in followers.into_iter().enumerate() {
        let seen = follower.await.unwrap();
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "follower {index} saw positions out of order");
        let ids: HashSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids.len(), seen.len(), "follower {index} saw an event twice");
        assert_eq!(ids, written, "follower {index} missed events (or saw foreign ones)");
    }
}

#[derive(Debug, Clone)]
enum TailStep {
    Append {
        events: usize,
    },
    /// Follower `follower` reads a page of `limit` through the tail.
    Read {
        follower: usize,
        limit: usize,
    },
    /// Follower `follower` goes back to an earlier position (as after a rebuild).
    Rewind {
        follower: usize,
        by: usize,
    },
}

fn tail_steps() -> impl Strategy<Value = (usize, Vec<TailStep>)> {
    let step = prop_oneof![
        3 => (1usize..5).prop_map(|events| TailStep::Append { events }),
        5 => (0usize..3, 1usize..6).prop_map(|(follower, limit)| TailStep::Read { follower, limit }),
        1 => (0usize..3, 1usize..10).prop_map(|(follower, by)| TailStep::Rewind { follower, by }),
    ];
    (1usize..8, prop::collection::vec(step, 1..40))
}

/// A model test of [`SharedTail`]: whatever three followers read through it — in step, apart,
/// rewound, with any page size and a tiny tail — each answer is exactly the start of what the
/// store itself answers for the same position, and every follower ends with every event in
/// the order the store gave them.
pub async fn a_shared_tail_answers_what_the_store_answers(store: SharedStore) {
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&tail_steps(), |(capacity, steps)| {
        let store = store.clone();
        let outcome = tokio::task::block_in_place(|| handle.block_on(run_tail_case(store, capacity, steps)));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

async fn run_tail_case(store: SharedStore, capacity: usize, steps: Vec<TailStep>) -> Result<(), String> {
    let start = read_everything(&store).await.last().map_or(GlobalPosition::START, |e| e.position);
    let tail: SharedStore = Arc::new(SharedTail::new(store.clone(), capacity));
    let stream = unique_stream("tail");
    let mut version = 0;
    let mut appended: Vec<Uuid> = Vec::new();
    // Each follower's history: the positions it has read up to, in order.
    let mut followers: Vec<Vec<GlobalPosition>> = vec![vec![start]; 3];
    for step in steps {
        match step {
            TailStep::Append { events } => {
                let batch: Vec<NewEvent> = (0..events).map(|i| event("T", json!({"i": i}))).collect();
                appended.extend(batch.iter().map(|e| e.event_id));
                store.append(&stream, ExpectedVersion(version), batch).await.map_err(|e| e.to_string())?;
                version += events as u64;
            }
            TailStep::Read { follower, limit } => {
                let after = *followers[follower].last().expect("a follower has a position");
                let shared = tail.read_all(after, limit).await.map_err(|e| e.to_string())?;
                let direct = store.read_all(after, limit).await.map_err(|e| e.to_string())?;
                let ids = |page: &[RecordedEvent]| page.iter().map(|e| e.event_id).collect::<Vec<_>>();
                if !ids(&direct).starts_with(&ids(&shared)) {
                    return Err(format!(
                        "after {after:?} (limit {limit}) the tail answered {:?}, the store {:?}",
                        ids(&shared),
                        ids(&direct)
                    ));
                }
                if let Some(last) = shared.last() {
                    followers[follower].push(last.position);
                }
            }
            TailStep::Rewind { follower, by } => {
                let history = &mut followers[follower];
                let keep = history.len().saturating_sub(by).max(1);
                history.truncate(keep);
            }
        }
    }
    for follower in 0..3 {
        let mut after = start;
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < appended.len() && tokio::time::Instant::now() < deadline {
            let page = tail.read_all(after, 4).await.map_err(|e| e.to_string())?;
            if let Some(last) = page.last() {
                after = last.position;
            }
            if page.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen.extend(page.iter().map(|e| e.event_id));
        }
        if seen != appended {
            return Err(format!(
                "follower {follower} read {} events, not the {} appended in order",
                seen.len(),
                appended.len()
            ));
        }
    }
    Ok(())
}
