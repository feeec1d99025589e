//! E-mail intake takes a message once even when it was interrupted half-way: the key reserved
//! before writing leads a later delivery back to the same ticket id.

use std::sync::Arc;

use lettre::message::{Mailbox, SinglePart};
use ticket_app::attachments::AttachmentStore;
use ticket_app::registry::RegistryService;
use ticket_app::{ServiceOptions, SystemClock, TicketService};
use ticket_domain::vocabulary::TicketId;
use ticket_mail::intake::{IntakeOutcome, MailIntake};

fn message(id: &str) -> Vec<u8> {
    lettre::Message::builder()
        .from("Kovács Éva <eva@example.hu>".parse::<Mailbox>().unwrap())
        .to("support@tickets.example".parse::<Mailbox>().unwrap())
        .subject("Hibás számla")
        .message_id(Some(id.into()))
        .singlepart(SinglePart::plain("A számla hibás.".to_owned()))
        .unwrap()
        .formatted()
}

async fn reserve(database: &event_store::Database, message_id: &str, ticket: TicketId) {
    let event_store::Database::Sqlite { write, .. } = database else { unreachable!("an SQLite test") };
    sqlx::query("INSERT INTO mail_threads (message_id, ticket_id, direction, created_us) VALUES ($1, $2, 'in', 0)")
        .bind(message_id)
        .bind(ticket.as_uuid().to_string())
        .execute(write)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_interrupted_half_way_is_resumed_under_its_reserved_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let opened = event_store::open(&format!("sqlite:{}", dir.path().join("t.db").display())).await.unwrap();
    ticket_projections::migrate(&opened.database).await.unwrap();
    ticket_mail::migrate(&opened.database).await.unwrap();
    let service = Arc::new(TicketService::new(opened.store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
    let intake = MailIntake {
        service: service.clone(),
        database: opened.database.clone(),
        attachments: AttachmentStore::new(dir.path().join("attachments"), 1024, vec![]),
        reopen_window: chrono::Duration::days(14),
        registry: Arc::new(RegistryService::new(opened.store.clone(), Arc::new(SystemClock))),
    };

    // A crash after reserving the key, before the ticket was written: the next delivery creates
    // the ticket under the reserved id.
    let reserved = TicketId::new();
    reserve(&opened.database, "<crashed-1@mail.example.hu>", reserved).await;
    let outcome = intake.take(&message("<crashed-1@mail.example.hu>")).await.unwrap();
    assert!(matches!(outcome, IntakeOutcome::Created { ticket_id, .. } if ticket_id == reserved), "{outcome:?}");
    // … and the delivery after that is a duplicate of it.
    let again = intake.take(&message("<crashed-1@mail.example.hu>")).await.unwrap();
    assert_eq!(again, IntakeOutcome::Duplicate { ticket_id: reserved });
    assert_eq!(service.history(reserved).await.unwrap().len(), 1, "one Received, nothing else");
}
