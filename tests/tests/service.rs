//! The command service's shortcuts are checked by the store, never trusted blindly.

use std::sync::Arc;

use ticket_app::{AppError, CommandContext, ServiceOptions, SystemClock, TicketService};
use ticket_domain::vocabulary::{Actor, Role, TicketId};
use ticket_domain::{DomainError, TicketCommand, sample};
use ticket_tests::backends::{self, TestStore};

/// `execute_new` decides on an empty ticket without reading the stream. If the id is in fact
/// taken (by another service instance, or a caller's bug), the append's version check catches it,
/// the command is decided again on what is stored, and refused; the stored ticket is untouched.
async fn a_new_ticket_on_a_taken_id_is_refused_and_writes_nothing(test_store: TestStore) {
    let store = test_store.store.clone();
    let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    let first = TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default());
    let id = TicketId::new();
    let created = first.execute_new(id, TicketCommand::Receive(sample::receive(1)), &context).await.unwrap();
    assert_eq!(created.ticket.version(), 1);
    first.execute(id, None, sample::acknowledge(), &context).await.unwrap();

    // Another instance (its own cache, which has never seen the ticket) is told the id is new.
    let second = TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default());
    let refused = second.execute_new(id, TicketCommand::Receive(sample::receive(2)), &context).await;
    assert!(matches!(refused, Err(AppError::Refused(DomainError::AlreadyReceived))), "{refused:?}");
    let history = second.history(id).await.unwrap();
    assert_eq!(history.len(), 2, "the refused Receive wrote nothing");
    assert_eq!(second.load(id).await.unwrap().version(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_new_ticket_on_a_taken_id_is_refused_and_writes_nothing() {
    a_new_ticket_on_a_taken_id_is_refused_and_writes_nothing(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_new_ticket_on_a_taken_id_is_refused_and_writes_nothing() {
    let Some(test_store) = backends::postgres().await else { return };
    a_new_ticket_on_a_taken_id_is_refused_and_writes_nothing(test_store).await;
}

/// A store in front of a store that holds the first append to one stream until released: a
/// slow append (a database stall, a lock) of another service instance.
struct HeldStore {
    inner: event_store::SharedStore,
    stream: event_store::StreamId,
    armed: std::sync::atomic::AtomicBool,
    held: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl HeldStore {
    fn new(inner: event_store::SharedStore, ticket: TicketId) -> Arc<Self> {
        Arc::new(Self {
            inner,
            stream: event_store::StreamId::parse(&ticket.stream_name()).unwrap(),
            armed: std::sync::atomic::AtomicBool::new(true),
            held: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        })
    }
}

#[async_trait::async_trait]
impl event_store::EventStore for HeldStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn append(
        &self,
        stream: &event_store::StreamId,
        expected: event_store::ExpectedVersion,
        events: Vec<event_store::NewEvent>,
    ) -> Result<event_store::AppendOutcome, event_store::StoreError> {
        if stream == &self.stream && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.held.notify_one();
            let _permit = self.release.acquire().await.unwrap();
        }
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &event_store::StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<event_store::RecordedEvent>, event_store::StoreError> {
        self.inner.read_stream(stream, after_version, limit).await
    }
    async fn read_all(
        &self,
        after: event_store::GlobalPosition,
        limit: usize,
    ) -> Result<Vec<event_store::RecordedEvent>, event_store::StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: &event_store::StreamId) -> Result<u64, event_store::StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn next_sequence_value(&self, sequence: event_store::Sequence) -> Result<u64, event_store::StoreError> {
        self.inner.next_sequence_value(sequence).await
    }
    fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.appended()
    }
    async fn ping(&self) -> Result<(), event_store::StoreError> {
        self.inner.ping().await
    }
}

fn service(store: event_store::SharedStore) -> Arc<TicketService> {
    Arc::new(TicketService::new(store, Arc::new(SystemClock), ServiceOptions::default()))
}

/// One `Idempotency-Key`, two attempts: the first's append is held (slow) while the second —
/// the takeover of its stale claim, in another instance, with the same ticket id and
/// correlation id — runs and stores the command. When the first's append finally reaches the
/// store it is not stored again: the first answers what the second stored. For a note and for
/// intake (where the first would otherwise answer "already received").
async fn a_keyed_command_is_applied_once_when_its_first_append_is_overtaken(test_store: TestStore) {
    let store = test_store.store.clone();
    let staff = Actor::Staff { name: "kata".into(), role: Role::Agent };
    let takeover = service(store.clone());

    // A note on an existing ticket.
    let id = TicketId::new();
    takeover
        .execute_new(id, TicketCommand::Receive(sample::receive(1)), &CommandContext::new(staff.clone()))
        .await
        .unwrap();
    let held = HeldStore::new(store.clone(), id);
    let first = service(held.clone());
    let context = CommandContext::new(staff.clone());
    let slow = tokio::spawn({
        let (first, context) = (first.clone(), context.clone());
        async move { first.execute_once(id, None, sample::note(), &context, false).await }
    });
    held.held.notified().await;
    let second = takeover.execute_once(id, None, sample::note(), &context, false).await.unwrap();
    assert!(!second.already_applied);
    assert_eq!(second.ticket.version(), 2);
    held.release.add_permits(1);
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.ticket, second.ticket, "the first attempt answers what the second stored");
    assert!(slow.already_applied);
    assert_eq!(slow.records, second.records);
    let history = takeover.history(id).await.unwrap();
    assert_eq!(history.iter().filter(|r| r.correlation_id == context.correlation_id).count(), 1, "{history:#?}");
    assert_eq!(history.len(), 2);

    // Intake: both attempts create the same new ticket; the second's is stored.
    let new_id = TicketId::new();
    let held = HeldStore::new(store.clone(), new_id);
    let first = service(held.clone());
    let context = CommandContext::new(staff.clone());
    let slow = tokio::spawn({
        let (first, context) = (first.clone(), context.clone());
        async move { first.execute_once(new_id, None, TicketCommand::Receive(sample::receive(10)), &context, true).await }
    });
    held.held.notified().await;
    let second = takeover
        .execute_once(new_id, None, TicketCommand::Receive(sample::receive(11)), &context, false)
        .await
        .unwrap();
    held.release.add_permits(1);
    let slow = slow.await.unwrap().expect("the first attempt answers the ticket, not 'already received'");
    assert_eq!(slow.ticket, second.ticket);
    assert_eq!(slow.ticket.state().unwrap().number.get(), 11, "the stored ticket's number");
    assert_eq!(takeover.history(new_id).await.unwrap().len(), 1);
}

/// The other order: the first attempt stored the command (its answer was lost); the takeover
/// finds it by its correlation id before deciding — also when its own cache is behind or
/// already holds the first's event (where the command would be refused), and with the first
/// attempt's `If-Match` (which the stored event has made stale).
async fn a_keyed_command_applied_by_its_first_attempt_is_answered_not_repeated(test_store: TestStore) {
    let store = test_store.store.clone();
    let staff = Actor::Staff { name: "kata".into(), role: Role::Agent };
    let first = service(store.clone());
    let other = service(store.clone());
    let id = TicketId::new();
    first
        .execute_new(id, TicketCommand::Receive(sample::receive(1)), &CommandContext::new(staff.clone()))
        .await
        .unwrap();
    // `other` caches the ticket at version 1, before the first attempt's note.
    other.execute(id, None, sample::assign("kata"), &CommandContext::new(staff.clone())).await.unwrap();
    let context = CommandContext::new(staff.clone());
    let applied = first.execute_once(id, Some(2), sample::note(), &context, false).await.unwrap();
    assert_eq!(applied.ticket.version(), 3);
    let repeat = other.execute_once(id, Some(2), sample::note(), &context, false).await.unwrap();
    assert!(repeat.already_applied);
    assert_eq!((repeat.ticket.clone(), repeat.records.clone()), (applied.ticket.clone(), applied.records.clone()));

    // A command the state after it refuses (a second Acknowledge), decided from a cache that
    // already holds it.
    let context = CommandContext::new(staff.clone());
    let acknowledged = first.execute_once(id, None, sample::acknowledge(), &context, false).await.unwrap();
    // `other` decides a note on its stale cache, loses the race, and caches what it read then.
    other.execute(id, None, sample::note(), &CommandContext::new(staff.clone())).await.unwrap();
    let repeat = other.execute_once(id, None, sample::acknowledge(), &context, false).await.unwrap();
    assert!(repeat.already_applied);
    assert_eq!(repeat.ticket, acknowledged.ticket, "answered as it stood after the first attempt");
    let history = first.history(id).await.unwrap();
    assert_eq!(history.len(), 5, "{history:#?}");
    assert_eq!(history.iter().filter(|r| r.correlation_id == context.correlation_id).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_keyed_command_is_applied_once_when_its_first_append_is_overtaken() {
    a_keyed_command_is_applied_once_when_its_first_append_is_overtaken(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_keyed_command_is_applied_once_when_its_first_append_is_overtaken() {
    let Some(test_store) = backends::postgres().await else { return };
    a_keyed_command_is_applied_once_when_its_first_append_is_overtaken(test_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_keyed_command_applied_by_its_first_attempt_is_answered_not_repeated() {
    a_keyed_command_applied_by_its_first_attempt_is_answered_not_repeated(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_keyed_command_applied_by_its_first_attempt_is_answered_not_repeated() {
    let Some(test_store) = backends::postgres().await else { return };
    a_keyed_command_applied_by_its_first_attempt_is_answered_not_repeated(test_store).await;
}
