//! Given these events, when this command, then these events (or this refusal). No I/O.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ticket_domain::sample;
use ticket_domain::vocabulary::{Category, Priority};
use ticket_domain::{CommandKind, DomainError, Status, SurveyStatus, Ticket, TicketCommand, TicketEvent};

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// Runs commands one minute apart; panics on a refusal, naming it.
fn given(commands: impl IntoIterator<Item = TicketCommand>) -> (Ticket, i64) {
    let mut ticket = Ticket::default();
    let mut minute = 0;
    for command in commands {
        let kind = command.kind();
        let events = ticket.decide(command, t(minute)).unwrap_or_else(|e| panic!("given {kind:?} was refused: {e}"));
        for event in &events {
            ticket = ticket.evolve(event, t(minute));
        }
        minute += 1;
    }
    (ticket, minute)
}

fn resolved_ticket() -> Vec<TicketCommand> {
    vec![
        TicketCommand::Receive(sample::receive(1)),
        sample::acknowledge(),
        sample::investigate(Category::Complaint),
        sample::resolve(),
    ]
}

#[test]
fn the_whole_lifecycle_with_an_escalation() {
    let (ticket, _) = given([
        TicketCommand::Receive(sample::receive(7)),
        sample::acknowledge(),
        sample::assign("kata"),
        sample::investigate(Category::BugReport),
        sample::escalate("it-operations"),
        sample::answer_escalation(),
        sample::agent_reply(),
        sample::resolve(),
        TicketCommand::Close,
        sample::survey_sent(),
        sample::answer_survey(4),
    ]);
    let state = ticket.state().unwrap();
    assert_eq!(ticket.version(), 11);
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.survey, SurveyStatus::Answered);
    assert_eq!(state.category, Some(Category::BugReport));
    assert_eq!(state.assignee.as_ref().map(|a| a.as_str()), Some("kata"));
    assert_eq!(state.received_at, t(0));
    assert_eq!(state.first_contact_at, Some(t(3)));
    assert_eq!(state.resolved_at, Some(t(7)));
    assert_eq!(state.closed_at, Some(t(8)));
    assert_eq!(state.invariant_violation(), None);
}

#[test]
fn escalation_is_answered_by_the_division_it_went_to() {
    let (ticket, minute) = given([
        TicketCommand::Receive(sample::receive(1)),
        sample::acknowledge(),
        sample::investigate(Category::BugReport),
        sample::escalate("legal"),
    ]);
    assert_eq!(ticket.state().unwrap().status, Status::Escalated);
    let events = ticket.decide(sample::answer_escalation(), t(minute)).unwrap();
    let [TicketEvent::EscalationAnswered(answered)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(answered.division.as_str(), "legal");
    // While the division holds it, the agent can neither resolve nor escalate again.
    assert!(matches!(
        ticket.decide(sample::resolve(), t(minute)),
        Err(DomainError::InvalidTransition { command: "resolve", status: Status::Escalated, .. })
    ));
}

#[test]
fn a_command_out_of_order_is_refused_with_what_is_allowed() {
    let (ticket, minute) = given([TicketCommand::Receive(sample::receive(1))]);
    let error = ticket.decide(sample::resolve(), t(minute)).unwrap_err();
    assert_eq!(
        error,
        DomainError::InvalidTransition {
            command: "resolve",
            status: Status::Received,
            allowed_from: &[Status::Investigating]
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot 'resolve' a ticket that is received; 'resolve' is allowed when the ticket is investigating"
    );
    let allowed = ticket.allowed_commands();
    assert!(allowed.contains(&CommandKind::Acknowledge));
    assert!(allowed.contains(&CommandKind::MarkOutOfScope));
    assert!(!allowed.contains(&CommandKind::Resolve));
    assert!(!allowed.contains(&CommandKind::Receive));
}

#[test]
fn nothing_happens_to_a_ticket_that_was_never_received() {
    let error = Ticket::default().decide(TicketCommand::Close, t(0)).unwrap_err();
    assert_eq!(error, DomainError::NotReceived { command: "close" });
    let (ticket, minute) = given([TicketCommand::Receive(sample::receive(1))]);
    assert_eq!(ticket.decide(TicketCommand::Receive(sample::receive(2)), t(minute)), Err(DomainError::AlreadyReceived));
}

#[test]
fn closing_needs_a_resolution_and_the_survey_goes_out_once() {
    let (ticket, minute) = given(resolved_ticket());
    let (closed, _) = {
        let events = ticket.decide(TicketCommand::Close, t(minute)).unwrap();
        assert_eq!(events.len(), 1);
        (ticket.clone().evolve(&events[0], t(minute)), ())
    };
    let events = closed.decide(sample::survey_sent(), t(minute + 1)).unwrap();
    let with_survey = closed.clone().evolve(&events[0], t(minute + 1));
    assert_eq!(with_survey.decide(sample::survey_sent(), t(minute + 2)), Err(DomainError::SurveyAlreadySent));
    assert_eq!(closed.decide(sample::answer_survey(3), t(minute + 2)), Err(DomainError::SurveyNotSent));
}

#[test]
fn a_customer_reply_within_the_window_reopens_and_after_it_does_not() {
    let (ticket, minute) = given(resolved_ticket());
    let window = Duration::days(14);
    let within = ticket.decide(sample::customer_reply(window), t(minute) + Duration::days(13)).unwrap();
    assert!(matches!(within.as_slice(), [TicketEvent::CustomerReplied(_), TicketEvent::Reopened(_)]), "{within:?}");
    let after = ticket.decide(sample::customer_reply(window), t(minute) + Duration::days(15)).unwrap();
    assert!(matches!(after.as_slice(), [TicketEvent::CustomerReplied(_)]), "{after:?}");
    let mut reopened = ticket.clone();
    for event in &within {
        reopened = reopened.evolve(event, t(minute + 1));
    }
    let state = reopened.state().unwrap();
    assert_eq!(state.status, Status::Investigating);
    assert_eq!(state.resolved_at, None);
}

#[test]
fn out_of_scope_closes_without_a_survey_and_cannot_be_reopened() {
    let (ticket, minute) = given([TicketCommand::Receive(sample::receive(1)), sample::out_of_scope()]);
    let state = ticket.state().unwrap();
    assert_eq!((state.status, state.out_of_scope), (Status::Closed, true));
    assert_eq!(
        ticket.decide(sample::survey_sent(), t(minute)),
        Err(DomainError::ClosedOutOfScope { command: "survey-sent" })
    );
    assert_eq!(ticket.decide(sample::reopen(), t(minute)), Err(DomainError::ClosedOutOfScope { command: "reopen" }));
    let reply = ticket.decide(sample::customer_reply(Duration::days(14)), t(minute)).unwrap();
    assert!(matches!(reply.as_slice(), [TicketEvent::CustomerReplied(_)]), "a reply is kept but does not reopen");
    // A resolved ticket is no longer "open" for out-of-scope.
    let (resolved, minute) = given(resolved_ticket());
    assert!(matches!(resolved.decide(sample::out_of_scope(), t(minute)), Err(DomainError::InvalidTransition { .. })));
}

#[test]
fn reclassification_records_before_and_after_and_refuses_a_no_op() {
    let (ticket, minute) = given([
        TicketCommand::Receive(sample::receive(1)),
        sample::acknowledge(),
        sample::investigate(Category::UserSupport),
    ]);
    let events = ticket.decide(sample::reclassify(Category::Complaint), t(minute)).unwrap();
    let [TicketEvent::Reclassified(reclassified)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(reclassified.previous_category, Some(Category::UserSupport));
    assert_eq!(reclassified.category, Some(Category::Complaint));
    let after = ticket.clone().evolve(&events[0], t(minute));
    assert_eq!(after.state().unwrap().category, Some(Category::Complaint));
    assert!(matches!(
        after.decide(sample::reclassify(Category::Complaint), t(minute)),
        Err(DomainError::NothingToChange(_))
    ));
}

#[test]
fn assigning_to_the_current_assignee_is_refused() {
    let (ticket, minute) = given([TicketCommand::Receive(sample::receive(1)), sample::assign("kata")]);
    assert!(matches!(ticket.decide(sample::assign("kata"), t(minute)), Err(DomainError::NothingToChange(_))));
    assert!(ticket.decide(sample::assign("bence"), t(minute)).is_ok());
}

#[test]
fn a_priority_change_records_the_previous_one_and_is_refused_on_a_closed_ticket() {
    let (ticket, minute) = given([TicketCommand::Receive(sample::receive(1))]);
    assert_eq!(ticket.state().unwrap().priority, Priority::Normal);
    assert!(matches!(
        ticket.decide(sample::prioritise(Priority::Normal), t(minute)),
        Err(DomainError::NothingToChange(_))
    ));
    let events = ticket.decide(sample::prioritise(Priority::Urgent), t(minute)).unwrap();
    let [TicketEvent::Prioritised(changed)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!((changed.priority, changed.previous_priority), (Priority::Urgent, Priority::Normal));
    let urgent = ticket.evolve(&events[0], t(minute));
    assert_eq!(urgent.state().unwrap().priority, Priority::Urgent);
    let mut commands = resolved_ticket();
    commands.push(TicketCommand::Close);
    let (closed, minute) = given(commands);
    assert!(matches!(
        closed.decide(sample::prioritise(Priority::High), t(minute)),
        Err(DomainError::InvalidTransition { command: "priority", status: Status::Closed, .. })
    ));
}

#[test]
fn notes_are_allowed_even_on_a_closed_ticket_but_replies_are_not() {
    let mut commands = resolved_ticket();
    commands.push(TicketCommand::Close);
    let (ticket, minute) = given(commands);
    assert!(ticket.decide(sample::note(), t(minute)).is_ok());
    assert!(matches!(
        ticket.decide(sample::agent_reply(), t(minute)),
        Err(DomainError::InvalidTransition { command: "replies", status: Status::Closed, .. })
    ));
}

#[test]
fn evolve_never_fails_even_on_a_history_decide_would_not_write() {
    // An event before the ticket exists, then the same event twice: applied, counted, no panic.
    let at = t(0);
    let stray = TicketEvent::Closed(ticket_domain::event::Closed {});
    let ticket = Ticket::default().evolve(&stray, at).evolve(&stray, at);
    assert_eq!(ticket.version(), 2);
    assert!(ticket.state().is_none());
}

#[test]
fn a_divisions_answer_reaches_the_reporter_before_the_ticket_is_resolved() {
    let (ticket, minute) = given([
        TicketCommand::Receive(sample::receive(8)),
        sample::acknowledge(),
        sample::investigate(Category::Complaint),
        sample::escalate("legal"),
        sample::answer_escalation(),
    ]);
    assert_eq!(ticket.decide(sample::resolve(), t(minute)).unwrap_err(), DomainError::OutcomeNotInformed);
    assert!(!ticket.allowed_commands().contains(&CommandKind::Resolve));
    // A note is not telling the reporter; a reply is.
    let noted = ticket
        .decide(sample::note(), t(minute))
        .unwrap()
        .iter()
        .fold(ticket.clone(), |t, e| t.evolve(e, self::t(minute)));
    assert_eq!(noted.decide(sample::resolve(), t(minute)).unwrap_err(), DomainError::OutcomeNotInformed);
    let told = noted
        .decide(sample::agent_reply(), t(minute))
        .unwrap()
        .iter()
        .fold(noted.clone(), |t, e| t.evolve(e, self::t(minute)));
    assert!(told.decide(sample::resolve(), t(minute + 1)).is_ok());
    // Without an escalation, resolving needs no reply first.
    let (plain, minute) = given([
        TicketCommand::Receive(sample::receive(9)),
        sample::acknowledge(),
        sample::investigate(Category::UserSupport),
    ]);
    assert!(plain.decide(sample::resolve(), t(minute)).is_ok());
}

#[test]
fn a_rejected_complaint_carries_its_reasons() {
    use ticket_domain::vocabulary::{ComplaintOutcome, MessageBody};
    let (complaint, minute) = given([
        TicketCommand::Receive(sample::receive(10)),
        sample::acknowledge(),
        sample::investigate(Category::Complaint),
    ]);
    let with = |outcome, reasons: Option<&str>| {
        let TicketCommand::Resolve { resolution, root_cause, within_own_authority, .. } = sample::resolve() else {
            unreachable!()
        };
        TicketCommand::Resolve {
            resolution,
            root_cause,
            within_own_authority,
            complaint_outcome: outcome,
            rejection_reasons: reasons.map(|r| MessageBody::parse(r).unwrap()),
        }
    };
    assert!(matches!(
        complaint.decide(with(ComplaintOutcome::Rejected, None), t(minute)),
        Err(DomainError::ComplaintOutcome(_))
    ));
    assert!(matches!(
        complaint.decide(with(ComplaintOutcome::PartlyUpheld, None), t(minute)),
        Err(DomainError::ComplaintOutcome(_))
    ));
    assert!(matches!(
        complaint.decide(with(ComplaintOutcome::Upheld, Some("why")), t(minute)),
        Err(DomainError::ComplaintOutcome(_))
    ));
    let events =
        complaint.decide(with(ComplaintOutcome::Rejected, Some("Contract §4.2 bills it twice.")), t(minute)).unwrap();
    let TicketEvent::Resolved(resolved) = &events[0] else { panic!("{events:?}") };
    assert_eq!(resolved.complaint_outcome, ComplaintOutcome::Rejected);
    assert_eq!(resolved.personal.rejection_reasons.as_ref().map(|r| r.as_str()), Some("Contract §4.2 bills it twice."));
    // Only a complaint is rejected.
    let (support, minute) = given([
        TicketCommand::Receive(sample::receive(11)),
        sample::acknowledge(),
        sample::investigate(Category::UserSupport),
    ]);
    assert!(matches!(
        support.decide(with(ComplaintOutcome::Rejected, Some("no")), t(minute)),
        Err(DomainError::ComplaintOutcome(_))
    ));
}
