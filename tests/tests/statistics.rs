//! The complaint statistics on a small dated history whose every figure was computed by hand
//! (see the comments), on both stores.

use chrono::{DateTime, NaiveDate, Utc};
use ticket_app::{CommandContext, ManualClock, ServiceOptions, TicketService};
use ticket_domain::vocabulary::{Actor, Category, Role, RootCause, TicketId};
use ticket_domain::{TicketCommand, sample};
use ticket_projections::statistics::Statistics;
use ticket_projections::statistics::query::{self, Dimension, Period, Report, StatsQuery, SummaryRow};
use ticket_tests::backends::{self, TestStore};

fn at(instant: &str) -> DateTime<Utc> {
    instant.parse().expect("an RFC 3339 instant")
}

fn resolve(root_cause: &str) -> TicketCommand {
    let TicketCommand::Resolve { resolution, within_own_authority, complaint_outcome, rejection_reasons, .. } =
        sample::resolve()
    else {
        unreachable!()
    };
    let root_cause = RootCause::parse(root_cause).unwrap();
    TicketCommand::Resolve { resolution, root_cause, within_own_authority, complaint_outcome, rejection_reasons }
}

/// The fixture history. Times are UTC; Budapest is UTC+1 until 29 March 2026, UTC+2 after.
async fn write_history(test_store: &TestStore) {
    let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
    let service = TicketService::new(test_store.store.clone(), clock.clone(), ServiceOptions::default());
    let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    let mut number = 0;
    let run = async |ticket: TicketId, when: &str, command: TicketCommand| {
        clock.set(at(when));
        service.execute(ticket, None, command, &context).await.unwrap_or_else(|e| panic!("{when}: {e}"));
    };
    let mut receive = |_: ()| {
        number += 1;
        (TicketId::new(), TicketCommand::Receive(sample::receive(number)))
    };
    // T0: received in February, acknowledged, still open: the backlog the report starts with.
    let (t0, r) = receive(());
    run(t0, "2026-02-20T09:00:00Z", r).await;
    run(t0, "2026-02-20T10:00:00Z", sample::acknowledge()).await;
    // T1: a complaint, resolved and closed in March; survey answered (5) in March.
    let (t1, r) = receive(());
    run(t1, "2026-03-02T09:00:00Z", r).await;
    run(t1, "2026-03-02T10:00:00Z", sample::acknowledge()).await; // 1 h
    run(t1, "2026-03-02T13:00:00Z", sample::investigate(Category::Complaint)).await; // 4 h
    run(t1, "2026-03-04T09:00:00Z", resolve("session-expiry-bug")).await; // 48 h
    run(t1, "2026-03-04T10:00:00Z", TicketCommand::Close).await;
    run(t1, "2026-03-04T10:00:00Z", sample::survey_sent()).await;
    run(t1, "2026-03-05T09:00:00Z", sample::answer_survey(5)).await;
    // T2: a bug report escalated to `legal` for 48 h; resolved and closed in March; its survey
    // is answered (3) in April.
    let (t2, r) = receive(());
    run(t2, "2026-03-03T09:00:00Z", r).await;
    run(t2, "2026-03-03T09:30:00Z", sample::acknowledge()).await; // 0.5 h
    run(t2, "2026-03-03T11:00:00Z", sample::investigate(Category::BugReport)).await; // 2 h
    run(t2, "2026-03-03T12:00:00Z", sample::escalate("legal")).await;
    run(t2, "2026-03-05T12:00:00Z", sample::answer_escalation()).await; // 48 h
    run(t2, "2026-03-05T13:00:00Z", sample::agent_reply()).await; // the outcome, told (policy §7.4.2)
    run(t2, "2026-03-06T09:00:00Z", resolve("session-expiry-bug")).await; // 72 h
    run(t2, "2026-03-06T09:00:00Z", TicketCommand::Close).await;
    run(t2, "2026-03-06T09:00:00Z", sample::survey_sent()).await;
    run(t2, "2026-04-02T09:00:00Z", sample::answer_survey(3)).await;
    // T3: a complaint in March, reclassified away on 1 April, resolved (not as a complaint)
    // on 2 April after 23 days (552 h); left resolved, not closed.
    let (t3, r) = receive(());
    run(t3, "2026-03-10T09:00:00Z", r).await;
    run(t3, "2026-03-10T11:00:00Z", sample::acknowledge()).await; // 2 h
    run(t3, "2026-03-10T15:00:00Z", sample::investigate(Category::Complaint)).await; // 6 h
    run(t3, "2026-04-01T09:00:00Z", sample::reclassify(Category::InformationRequest)).await;
    run(t3, "2026-04-02T09:00:00Z", resolve("misunderstanding")).await; // 552 h
    // T4: out of scope within the hour.
    let (t4, r) = receive(());
    run(t4, "2026-03-20T09:00:00Z", r).await;
    run(t4, "2026-03-20T10:00:00Z", sample::out_of_scope()).await;
    // T6: received at 00:30 on 1 April in Budapest (22:30 UTC on 31 March): an April ticket.
    let (t6, r) = receive(());
    run(t6, "2026-03-31T22:30:00Z", r).await;
    // T5: an April complaint resolved (24 h), closed, reopened, resolved again (72 h from receipt).
    let (t5, r) = receive(());
    run(t5, "2026-04-10T09:00:00Z", r).await;
    run(t5, "2026-04-10T09:15:00Z", sample::acknowledge()).await; // 0.25 h
    run(t5, "2026-04-10T10:00:00Z", sample::investigate(Category::Complaint)).await; // 1 h
    run(t5, "2026-04-11T09:00:00Z", resolve("billing-error")).await; // 24 h
    run(t5, "2026-04-11T09:00:00Z", TicketCommand::Close).await;
    run(t5, "2026-04-11T09:00:00Z", sample::survey_sent()).await;
    run(t5, "2026-04-12T09:00:00Z", sample::reopen()).await;
    run(t5, "2026-04-13T09:00:00Z", resolve("billing-error")).await; // 72 h
}

fn date(value: &str) -> NaiveDate {
    value.parse().unwrap()
}

async fn report(test_store: &TestStore, by: Option<Dimension>) -> Report {
    let database = test_store.database();
    let query = StatsQuery { from: date("2026-03-01"), to: date("2026-04-30"), period: Period::Month, by };
    query::run(&database, &query).await.unwrap()
}

fn expected_march() -> SummaryRow {
    SummaryRow {
        period_start: date("2026-03-01"),
        period_end: date("2026-03-31"),
        group: None,
        received: 4,  // T1 T2 T3 T4
        resolved: 2,  // T1 T2
        closed: 2,    // T1 T2
        escalated: 1, // T2
        reopened: 0,
        out_of_scope: 1,      // T4
        open_at_end: 2,       // T0 (from February) and T3
        acknowledge_count: 3, // 1, 0.5, 2 h
        acknowledge_hours_median: Some(1.0),
        acknowledge_hours_p90: Some(2.0),
        acknowledge_hours_mean: Some(1.167), // 3.5 / 3
        first_contact_count: 3,              // 4, 2, 6 h
        first_contact_hours_median: Some(4.0),
        first_contact_hours_p90: Some(6.0),
        first_contact_hours_mean: Some(4.0),
        resolution_count: 2, // 48, 72 h
        resolution_hours_median: Some(60.0),
        resolution_hours_p90: Some(72.0),
        resolution_hours_mean: Some(60.0),
        surveys_sent: 2,                 // T1 T2
        surveys_answered: 1,             // T1 (T2 answers in April)
        survey_response_rate: Some(1.0), // both surveys sent in March were answered
        survey_mean_score: Some(5.0),
        score_5: 1,
        complaints_registered: 2,  // T1 T3
        complaints_resolved: 1,    // T1
        complaints_closed: 1,      // T1
        complaints_open_at_end: 1, // T3
        complaint_resolution_hours_median: Some(48.0),
        complaint_resolution_hours_p90: Some(48.0),
        complaint_resolution_hours_mean: Some(48.0),
        ..SummaryRow::default()
    }
}

fn expected_april() -> SummaryRow {
    SummaryRow {
        period_start: date("2026-04-01"),
        period_end: date("2026-04-30"),
        group: None,
        received: 2, // T6 (local 1 April) and T5
        resolved: 3, // T3, T5 twice
        closed: 1,   // T5
        escalated: 0,
        reopened: 1, // T5
        out_of_scope: 0,
        open_at_end: 4, // T0, T3 (resolved), T6, T5 (resolved again)
        acknowledge_count: 1,
        acknowledge_hours_median: Some(0.25),
        acknowledge_hours_p90: Some(0.25),
        acknowledge_hours_mean: Some(0.25),
        first_contact_count: 1,
        first_contact_hours_median: Some(1.0),
        first_contact_hours_p90: Some(1.0),
        first_contact_hours_mean: Some(1.0),
        resolution_count: 3, // 552, 24, 72 h
        resolution_hours_median: Some(72.0),
        resolution_hours_p90: Some(552.0),
        resolution_hours_mean: Some(216.0), // 648 / 3
        surveys_sent: 1,                    // T5 (cleared by its reopen, never answered)
        surveys_answered: 1,                // T2's, sent in March
        survey_response_rate: Some(0.0),
        survey_mean_score: Some(3.0),
        score_3: 1,
        complaints_registered: 1,        // T5
        complaints_reclassified_away: 1, // T3
        complaints_resolved: 2,          // T5 twice (T3 was no longer a complaint)
        complaints_closed: 1,
        complaints_reopened: 1,
        complaints_open_at_end: 1,                     // T5
        complaint_resolution_hours_median: Some(48.0), // 24, 72 h
        complaint_resolution_hours_p90: Some(72.0),
        complaint_resolution_hours_mean: Some(48.0),
        ..SummaryRow::default()
    }
}

async fn hand_computed_figures(test_store: TestStore) {
    write_history(&test_store).await;
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let store = test_store.store.clone();
    ticket_projections::rebuild(&Statistics::new(store.clone()), &store, &database).await.unwrap();

    let report_all = report(&test_store, None).await;
    assert_eq!(report_all.summary, vec![expected_march(), expected_april()]);

    let divisions: Vec<_> = report_all
        .divisions
        .iter()
        .map(|d| {
            (
                d.period_start,
                d.division.as_str(),
                d.escalations,
                d.answers,
                d.answer_hours_median,
                d.resolved_after_escalation,
                d.resolutions,
                d.escalation_rate,
            )
        })
        .collect();
    assert_eq!(divisions, vec![(date("2026-03-01"), "legal", 1, 1, Some(48.0), 1, 2, Some(0.5))]);

    let causes: Vec<_> = report_all
        .root_causes
        .iter()
        .map(|r| (r.period_start, r.root_cause.as_str(), r.complaints_resolved, r.share))
        .collect();
    assert_eq!(
        causes,
        vec![
            (date("2026-03-01"), "session-expiry-bug", 1, Some(1.0)), // T1 (T2 was a bug report)
            (date("2026-04-01"), "billing-error", 2, Some(1.0)),
        ]
    );

    // By category, every fact counts under the category the ticket had at that moment: all
    // were received unclassified; the backlog moves with identification.
    let by_category = report(&test_store, Some(Dimension::Category)).await;
    let march: Vec<_> = by_category
        .summary
        .iter()
        .filter(|r| r.period_start == date("2026-03-01"))
        .map(|r| (r.group.clone().unwrap(), r.received, r.resolved, r.escalated, r.open_at_end))
        .collect();
    assert_eq!(
        march,
        vec![
            ("bug_report".to_owned(), 0, 1, 1, 0),
            ("complaint".to_owned(), 0, 1, 0, 1),
            ("unclassified".to_owned(), 4, 0, 0, 1),
        ]
    );

    // The reports' day cache serves the same figures, and notices a day that changed.
    let cache = query::DayCache::default();
    let monthly = StatsQuery { from: date("2026-03-01"), to: date("2026-04-30"), period: Period::Month, by: None };
    assert_eq!(query::report(&cache.days(&database).await.unwrap(), &monthly), report_all);
    let clock = ManualClock::new(at("2026-04-20T09:00:00Z"));
    let service = TicketService::new(store.clone(), clock, ServiceOptions::default());
    let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    service.execute(TicketId::new(), None, TicketCommand::Receive(sample::receive(100)), &context).await.unwrap();
    ticket_projections::rebuild(&Statistics::new(store.clone()), &store, &database).await.unwrap();
    let april = query::report(&cache.days(&database).await.unwrap(), &monthly).summary[1].clone();
    assert_eq!((april.received, april.open_at_end), (3, 5));

    // A weekly report of the same days adds up to the monthly one (with the ticket just added).
    let weekly = query::run(
        &database,
        &StatsQuery { from: date("2026-03-01"), to: date("2026-04-30"), period: Period::Week, by: None },
    )
    .await
    .unwrap();
    assert_eq!(
        weekly.summary.first().map(|r| (r.period_start, r.period_end)),
        Some((date("2026-03-01"), date("2026-03-01")))
    );
    assert_eq!(weekly.summary.iter().map(|r| r.received).sum::<i64>(), 7);
    assert_eq!(weekly.summary.last().map(|r| r.open_at_end), Some(5));
}

/// A filter keeps exactly one group's facts: the report filtered to a category is, bucket by
/// bucket, that category's rows of the report grouped by category (empty where it has none);
/// and by hand, what was received as what.
async fn filters_keep_one_groups_facts(test_store: TestStore) {
    write_history(&test_store).await;
    let database = test_store.database();
    ticket_projections::migrate(&database).await.unwrap();
    let store = test_store.store.clone();
    ticket_projections::rebuild(&Statistics::new(store.clone()), &store, &database).await.unwrap();
    let days = query::load(&database).await.unwrap();
    let base = StatsQuery { from: date("2026-03-01"), to: date("2026-04-30"), period: Period::Month, by: None };
    let grouped = query::report(&days, &StatsQuery { by: Some(Dimension::Category), ..base });
    let figures = |row: &SummaryRow| {
        (row.received, row.resolved, row.closed, row.escalated, row.reopened, row.open_at_end, row.resolution_count)
    };
    let mut seen = 0;
    for (code, name) in
        [(0u8, "unclassified"), (1, "bug_report"), (2, "user_support"), (3, "complaint"), (5, "data_change")]
    {
        let filter = query::Filter { category: Some(code), ..query::Filter::default() };
        let filtered = query::report_filtered(&days, &base, &filter);
        assert_eq!(filtered.summary.len(), 2, "every bucket has a row");
        for row in &filtered.summary {
            let group =
                grouped.summary.iter().find(|g| g.group.as_deref() == Some(name) && g.period_start == row.period_start);
            let expected = group.map(figures).unwrap_or_default();
            assert_eq!(figures(row), expected, "{name} in {}", row.period_start);
            seen += i64::from(figures(row) != Default::default());
        }
    }
    assert!(seen >= 3, "the fixture has facts in several categories");
    // By hand: the complaints resolved in March are T1's (received unclassified, so not
    // received as a complaint); every ticket is received unclassified.
    let complaints = query::report_filtered(&days, &base, &query::Filter { category: Some(3), ..Default::default() });
    assert_eq!((complaints.summary[0].received, complaints.summary[0].resolved), (0, 1));
    let unclassified = query::report_filtered(&days, &base, &query::Filter { category: Some(0), ..Default::default() });
    assert_eq!(unclassified.summary[0].received, 4);
    // A division filter: only the facts while `legal` held T2 (its escalation).
    let legal =
        query::report_filtered(&days, &base, &query::Filter { division: Some("legal".into()), ..Default::default() });
    assert_eq!(legal.summary[0].escalated, 1);
    assert_eq!(legal.summary[0].received, 0);
    // … and its escalation rate is over every resolution of the month, as unfiltered.
    let unfiltered = query::report(&days, &base);
    let rate = |report: &Report| {
        report.divisions.iter().find(|d| d.division == "legal").map(|d| (d.resolutions, d.escalation_rate))
    };
    assert_eq!(rate(&legal), rate(&unfiltered));
    assert!(rate(&legal).is_some_and(|(resolutions, _)| resolutions > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_filters_keep_one_groups_facts() {
    filters_keep_one_groups_facts(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_filters_keep_one_groups_facts() {
    let Some(test_store) = backends::postgres().await else { return };
    filters_keep_one_groups_facts(test_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_statistics_match_the_hand_computed_figures() {
    hand_computed_figures(backends::sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statistics_match_the_hand_computed_figures() {
    let Some(test_store) = backends::postgres().await else { return };
    hand_computed_figures(test_store).await;
}
