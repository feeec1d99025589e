//! Property tests of the workflow: random command sequences, checked against the edges of the
//! state machine as PRODUCT.md draws them (written here independently of `allowed_from`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use ticket_domain::vocabulary::{Category, Priority};
use ticket_domain::{DomainError, Status, Ticket, TicketCommand, TicketEvent, codec, sample};

fn category() -> impl Strategy<Value = Category> {
    prop_oneof![
        Just(Category::BugReport),
        Just(Category::UserSupport),
        Just(Category::Complaint),
        Just(Category::InformationRequest),
        Just(Category::DataChange),
    ]
}

fn command() -> impl Strategy<Value = TicketCommand> {
    prop_oneof![
        (1u64..1000).prop_map(|n| TicketCommand::Receive(sample::receive(n))),
        Just(sample::acknowledge()),
        category().prop_map(sample::investigate),
        prop_oneof![Just("legal"), Just("it-operations")].prop_map(sample::escalate),
        Just(sample::answer_escalation()),
        Just(sample::resolve()),
        Just(TicketCommand::Close),
        Just(sample::survey_sent()),
        (1u8..=5).prop_map(sample::answer_survey),
        Just(sample::reopen()),
        category().prop_map(sample::reclassify),
        prop_oneof![Just("kata"), Just("bence")].prop_map(sample::assign),
        prop::sample::select(Priority::ALL.to_vec()).prop_map(sample::prioritise),
        (0i64..30).prop_map(|days| sample::customer_reply(Duration::days(days))),
        Just(sample::agent_reply()),
        Just(sample::note()),
        Just(sample::out_of_scope()),
    ]
}

/// A command together with how many hours pass before it runs.
fn history() -> impl Strategy<Value = Vec<(u16, TicketCommand)>> {
    prop::collection::vec((0u16..400, command()), 0..60)
}

fn is_drawn_edge(from: Option<Status>, to: Status) -> bool {
    use Status::*;
    match from {
        None => to == Received,
        Some(from) if from == to => true,
        Some(from) => matches!(
            (from, to),
            (Received, Acknowledged)
                | (Acknowledged, Investigating)
                | (Investigating, Escalated)
                | (Escalated, Investigating)
                | (Investigating, Resolved)
                | (Resolved, Closed)
                | (Resolved, Investigating)
                | (Closed, Investigating)
                | (Received | Acknowledged | Investigating | Escalated, Closed)
        ),
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_never_reach_a_forbidden_state(history in history()) {
        let mut ticket = Ticket::default();
        let mut now = start();
        let mut recorded: Vec<(TicketEvent, DateTime<Utc>)> = Vec::new();
        for (hours, command) in history {
            now += Duration::hours(i64::from(hours));
            let kind = command.kind();
            let before = ticket.clone();
            match ticket.decide(command, now) {
                Ok(events) => {
                    prop_assert!(!events.is_empty(), "an accepted command records what happened");
                    prop_assert!(before.permits(kind).is_ok());
                    for event in &events {
                        let from = ticket.state().map(|s| s.status);
                        ticket = ticket.evolve(event, now);
                        let state = ticket.state().expect("a ticket exists after any accepted event");
                        prop_assert!(is_drawn_edge(from, state.status), "{from:?} -> {:?} by {kind:?}", state.status);
                        prop_assert_eq!(state.invariant_violation(), None, "after {:?}", kind);
                        recorded.push((event.clone(), now));
                    }
                }
                Err(error) => {
                    // A refusal changes nothing: `decide` borrows the ticket, and the
                    // refusal is either the workflow's or a no-op's.
                    prop_assert_eq!(&ticket, &before);
                    let workflow_refusal = before.permits(kind).is_err();
                    prop_assert!(workflow_refusal || matches!(error, DomainError::NothingToChange(_)), "{error}");
                }
            }
        }
        prop_assert_eq!(ticket.version(), recorded.len() as u64);
        // Replaying the recorded events rebuilds the same ticket, also through the codec.
        let replayed = Ticket::replay(recorded.iter().map(|(e, at)| (e, *at)));
        prop_assert_eq!(&replayed, &ticket);
        let decoded: Vec<(TicketEvent, DateTime<Utc>)> = recorded
            .iter()
            .map(|(event, at)| {
                let stored = codec::encode(event);
                let json = serde_json::to_string(&stored.payload).unwrap();
                (codec::decode(stored.event_type, stored.schema_version, serde_json::from_str(&json).unwrap()).unwrap(), *at)
            })
            .collect();
        prop_assert_eq!(Ticket::replay(decoded.iter().map(|(e, at)| (e, *at))), ticket);
    }

    #[test]
    fn allowed_commands_are_exactly_the_ones_decide_accepts(history in history(), probe in command()) {
        let mut ticket = Ticket::default();
        let mut now = start();
        for (hours, command) in history {
            now += Duration::hours(i64::from(hours));
            if let Ok(events) = ticket.decide(command, now) {
                for event in &events { ticket = ticket.evolve(event, now); }
            }
        }
        let kind = probe.kind();
        let listed = ticket.allowed_commands().contains(&kind);
        match ticket.decide(probe, now) {
            Ok(_) => prop_assert!(listed, "{kind:?} was accepted but not listed as allowed"),
            Err(DomainError::NothingToChange(_)) => prop_assert!(listed),
            Err(_) => prop_assert!(!listed, "{kind:?} was listed but refused"),
        }
    }
}
