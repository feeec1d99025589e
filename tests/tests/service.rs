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
