//! SLA clocks end to end on both stores, with a clock the test moves (never a real sleep): a
//! complaint received before Easter 2026 under a contract with business-hour targets. Due times
//! skip the holiday weekend; the scheduler records each warning and breach once, also when two
//! schedulers race and when the read model lags behind; queues sort by due time.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Budapest;
use ticket_app::registry::RegistryService;
use ticket_app::{CommandContext, ManualClock, ServiceOptions, TicketService};
use ticket_domain::calendar::BusinessCalendar;
use ticket_domain::registry::{ContractTerms, RegistryCommand, SlaTargets};
use ticket_domain::sla::SlaTarget;
use ticket_domain::vocabulary::{Actor, Category, ContractId, Role, TicketId};
use ticket_domain::{TicketCommand, TicketEvent, sample};
use ticket_projections::queues::{Queue, QueueFilter};
use ticket_projections::sla_clocks::{self, ComplianceGroup, Recorded, SlaClocks};
use ticket_projections::statistics::query::Period;
use ticket_tests::backends::{self, TestStore};

fn budapest(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Budapest.with_ymd_and_hms(2026, month, day, hour, minute, 0).single().unwrap().with_timezone(&Utc)
}

fn contract() -> ContractTerms {
    ContractTerms {
        customer: "ACME Kft.".into(),
        email_domains: vec!["example.hu".into()],
        email_addresses: vec![],
        sla: SlaTargets { first_contact_minutes: Some(8 * 60), resolution_minutes: Some(16 * 60) },
        sla_by_category: Default::default(),
        sla_by_priority: Default::default(),
        calendar: "hu".into(),
        working_hours: None,
        time_zone: None,
        pause_while_waiting_for_customer: false,
        warn_percent: None,
    }
}

async fn clocks_through_easter(test_store: TestStore) {
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let store = test_store.store.clone();
    let clock = ManualClock::new(budapest(4, 1, 9, 0));
    let service = Arc::new(TicketService::new(store.clone(), clock.clone(), ServiceOptions::default()));
    let registry = Arc::new(RegistryService::new(store.clone(), clock.clone()));
    let admin = CommandContext::new(Actor::Staff { name: "root".into(), role: Role::Admin });
    let acme = ContractId::parse("acme").unwrap();
    registry
        .execute(RegistryCommand::SaveContract { contract_id: acme.clone(), terms: contract() }, &admin)
        .await
        .unwrap();
    let agent = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });

    // Thursday 2 April 2026, 15:00: a complaint under ACME's contract.
    clock.set(budapest(4, 2, 15, 0));
    let mut receive = sample::receive(1);
    receive.contract_id = Some(acme);
    receive.category = Some(Category::Complaint);
    let ticket = TicketId::new();
    service.execute(ticket, None, TicketCommand::Receive(receive), &agent).await.unwrap();
    clock.set(budapest(4, 2, 15, 5));
    service.execute(ticket, None, sample::acknowledge(), &agent).await.unwrap();

    let projection =
        SlaClocks::new(store.clone(), registry.clone(), Arc::new(BusinessCalendar::hungary_default().unwrap()));
    // On PostgreSQL the log is read up to what every open transaction in the cluster lets show:
    // rebuild until the read model has the ticket's last event.
    let refresh = async || {
        let last = service.history(ticket).await.unwrap().last().unwrap().position;
        for _ in 0..400 {
            ticket_projections::rebuild(&projection, &store, &database).await.unwrap();
            if checkpoint(&database).await >= last.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the SLA clocks never caught up with position {last:?}");
    };
    refresh().await;
    let clocks = sla_clocks::clocks_of(&database, ticket).await.unwrap();
    let of = |target| clocks.iter().find(|c| c.target == target).unwrap().clone();
    // First contact, 8 business hours: 1 on Thursday; Good Friday to Easter Monday closed; 7 on Tuesday.
    assert_eq!(of(SlaTarget::FirstContact).due_at, Some(budapest(4, 7, 15, 0)));
    assert_eq!(of(SlaTarget::FirstContact).warn_at, Some(budapest(4, 7, 13, 24)), "80%: 6 h 24 min");
    // Resolution, 16 business hours: 1 Thursday, 8 Tuesday, 7 Wednesday.
    assert_eq!(of(SlaTarget::Resolution).due_at, Some(budapest(4, 8, 15, 0)));
    // The statutory answer to a complaint: 30 calendar days, to the end of 2 May.
    assert_eq!(of(SlaTarget::StatutoryAnswer).due_at, Some(budapest(5, 2, 23, 59) + chrono::Duration::seconds(59)));

    // Nothing is due before the warning share; at it, one warning.
    clock.set(budapest(4, 7, 13, 0));
    assert_eq!(sla_clocks::record_due(&service, &database).await.unwrap(), Recorded::default());
    clock.set(budapest(4, 7, 13, 30));
    assert_eq!(sla_clocks::record_due(&service, &database).await.unwrap(), Recorded { warnings: 1, breaches: 0 });
    // The read model has not caught up yet: the scheduler tries again and the workflow refuses.
    assert_eq!(sla_clocks::record_due(&service, &database).await.unwrap(), Recorded::default());
    refresh().await;
    assert!(of_now(&database, ticket, SlaTarget::FirstContact).await.warned);

    // At the due time two schedulers race: one breach is recorded.
    clock.set(budapest(4, 7, 15, 1));
    let (a, b) = tokio::join!(sla_clocks::record_due(&service, &database), sla_clocks::record_due(&service, &database));
    assert_eq!(a.unwrap().breaches + b.unwrap().breaches, 1);

    // First contact, late; then the resolution clock warns and breaches on Wednesday.
    clock.set(budapest(4, 7, 15, 30));
    service.execute(ticket, None, sample::investigate(Category::Complaint), &agent).await.unwrap();
    refresh().await;
    assert_eq!(of_now(&database, ticket, SlaTarget::FirstContact).await.met_at, Some(budapest(4, 7, 15, 30)));
    clock.set(budapest(4, 8, 16, 0));
    assert_eq!(sla_clocks::record_due(&service, &database).await.unwrap(), Recorded { warnings: 1, breaches: 1 });

    let history = service.history(ticket).await.unwrap();
    let sla_events: Vec<(&str, SlaTarget)> = history
        .iter()
        .filter_map(|r| match &r.event {
            TicketEvent::SlaWarned(e) => Some(("warned", e.target)),
            TicketEvent::SlaBreached(e) => Some(("breached", e.target)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sla_events,
        [
            ("warned", SlaTarget::FirstContact),
            ("breached", SlaTarget::FirstContact),
            ("warned", SlaTarget::Resolution),
            ("breached", SlaTarget::Resolution),
        ]
    );
    let scheduler = Actor::System { component: "sla-scheduler".into() };
    assert!(history.iter().filter(|r| matches!(r.event, TicketEvent::SlaBreached(_))).all(|r| r.actor == scheduler));

    // Queues show the earliest running due time and can sort by it.
    refresh().await;
    ticket_projections::rebuild(&ticket_projections::ticket_view::TicketView::new(store.clone()), &store, &database)
        .await
        .unwrap();
    let filter = QueueFilter { limit: 10, by_due: true, ..QueueFilter::default() };
    let rows = ticket_projections::queues::queue(&database, Queue::AllOpen, "kata", &filter).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].due_at, Some(budapest(4, 8, 15, 0)), "the resolution clock, still running");

    // SLA compliance for April, by contract: first contact met once, late (8.5 business hours,
    // 120.5 wall-clock hours), breached once; resolution not met yet, breached once.
    let calendar = BusinessCalendar::hungary_default().unwrap();
    let april = (budapest(4, 1, 0, 0), budapest(5, 1, 0, 0));
    let terms = registry.current().await.unwrap();
    let by_contract = Some(ComplianceGroup::Contract);
    let rows = sla_clocks::compliance(&database, &terms, &calendar, april.0, april.1, by_contract, None).await.unwrap();
    let summary: Vec<_> =
        rows.iter().map(|r| (r.target, r.group.as_deref(), r.met, r.met_in_time, r.compliance, r.breaches)).collect();
    assert_eq!(
        summary,
        [
            (SlaTarget::FirstContact, Some("acme"), 1, 0, Some(0.0), 1),
            (SlaTarget::Resolution, Some("acme"), 0, 0, None, 1),
        ]
    );
    assert_eq!((rows[0].business_hours_median, rows[0].wall_clock_hours_median), (Some(8.5), Some(120.5)));
    // By day: each count falls on the day its step was done or its breach was due.
    let daily = sla_clocks::compliance(&database, &terms, &calendar, april.0, april.1, by_contract, Some(Period::Day))
        .await
        .unwrap();
    let daily: Vec<_> = daily.iter().map(|r| (r.period_start, r.target, r.met, r.breaches)).collect();
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 4, d);
    assert_eq!(
        daily,
        [(day(7), SlaTarget::FirstContact, 1, 1), (day(8), SlaTarget::Resolution, 0, 1)],
        "first contact met and breached on the 7th, resolution breached on the 8th"
    );
    let by_priority = Some(ComplianceGroup::Priority);
    let rows = sla_clocks::compliance(&database, &terms, &calendar, april.0, april.1, by_priority, None).await.unwrap();
    let groups: Vec<_> = rows.iter().map(|r| (r.target, r.group.as_deref())).collect();
    assert_eq!(groups, [(SlaTarget::FirstContact, Some("normal")), (SlaTarget::Resolution, Some("normal"))]);
    let march = (budapest(3, 1, 0, 0), budapest(4, 1, 0, 0));
    let none = sla_clocks::compliance(&database, &terms, &calendar, march.0, march.1, None, None).await.unwrap();
    assert!(none.is_empty());
}

async fn checkpoint(database: &event_store::Database) -> i64 {
    let sql = "SELECT position FROM projection_checkpoints WHERE name = 'sla_clocks'";
    match database {
        event_store::Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await.unwrap(),
        event_store::Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

async fn of_now(database: &event_store::Database, ticket: TicketId, target: SlaTarget) -> sla_clocks::ClockRow {
    sla_clocks::clocks_of(database, ticket).await.unwrap().into_iter().find(|c| c.target == target).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sla_clocks_warn_and_breach_once_across_easter() {
    clocks_through_easter(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sla_clocks_warn_and_breach_once_across_easter() {
    let Some(test_store) = backends::postgres().await else { return };
    clocks_through_easter(test_store).await;
}

/// The statutory clock follows the configured days, and can be turned off.
async fn statutory_clock_is_configurable(test_store: TestStore) {
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let store = test_store.store.clone();
    let clock = ManualClock::new(budapest(6, 1, 10, 0));
    let service = TicketService::new(store.clone(), clock.clone(), ServiceOptions::default());
    let registry = Arc::new(RegistryService::new(store.clone(), clock.clone()));
    let agent = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    let mut receive = sample::receive(1);
    receive.category = Some(Category::Complaint);
    let ticket = TicketId::new();
    service.execute(ticket, None, TicketCommand::Receive(receive), &agent).await.unwrap();
    let calendar = Arc::new(BusinessCalendar::hungary_default().unwrap());
    let projection = |days| SlaClocks::new(store.clone(), registry.clone(), calendar.clone()).with_statutory_days(days);
    let last = service.history(ticket).await.unwrap().last().unwrap().position.0;
    let mut clocks = Vec::new();
    for _ in 0..400 {
        ticket_projections::rebuild(&projection(Some(15)), &store, &database).await.unwrap();
        clocks = sla_clocks::clocks_of(&database, ticket).await.unwrap();
        if checkpoint(&database).await >= last {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(clocks.len(), 1, "no contract: only the statutory clock");
    assert_eq!(clocks[0].due_at, Some(budapest(6, 16, 23, 59) + chrono::Duration::seconds(59)));
    ticket_projections::rebuild(&projection(None), &store, &database).await.unwrap();
    assert!(sla_clocks::clocks_of(&database, ticket).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_statutory_clock_is_configurable() {
    statutory_clock_is_configurable(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statutory_clock_is_configurable() {
    let Some(test_store) = backends::postgres().await else { return };
    statutory_clock_is_configurable(test_store).await;
}
