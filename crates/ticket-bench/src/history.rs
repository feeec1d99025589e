//! The generated history the benchmarks run on, and the tests seed from: `tickets` tickets
//! received evenly over `days` days from 2024-01-01, each taken through the workflow by the
//! domain's own `decide` (so every history is one the service could have written), with ~25%
//! complaints, 10% escalated, 4% out of scope, 5% still open at the end, surveys sent on every
//! close and 60% of them answered. Deterministic: the same history on every run.

use chrono::{DateTime, NaiveDate, Utc};
use event_store::{ExpectedVersion, SharedStore};
use ticket_app::CommandContext;
use ticket_app::envelope::to_new_event;
use ticket_domain::vocabulary::*;
use ticket_domain::{Ticket, TicketCommand, TicketEvent, sample};

/// A tiny deterministic generator (SplitMix64): the same history on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
    /// A duration between `min` and `max` minutes.
    fn minutes(&mut self, min: i64, max: i64) -> chrono::Duration {
        chrono::Duration::minutes(min + (self.next() % (max - min + 1) as u64) as i64)
    }
}

const CATEGORIES: [Category; 4] =
    [Category::BugReport, Category::UserSupport, Category::InformationRequest, Category::DataChange];
const AREAS: [ServiceArea; 4] = [
    ServiceArea::DataProtectionConsulting,
    ServiceArea::Norma,
    ServiceArea::ProcessImprovementConsulting,
    ServiceArea::Other,
];
/// The contracts tickets are received under (a store that registers them runs their SLA clocks).
pub const CONTRACTS: [&str; 2] = ["general", "premium"];
const DIVISIONS: [&str; 4] = ["legal", "development", "billing", "operations"];
const CAUSES: [&str; 6] =
    ["session-expiry-bug", "billing-error", "late-delivery", "misunderstanding", "data-entry", "contract-gap"];

/// One ticket's commands, each at its time.
fn plan(
    random: &mut Random,
    number: u64,
    received_at: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, TicketCommand)> {
    let mut receive = sample::receive(number);
    receive.channel = [Channel::WebForm, Channel::Email, Channel::Phone, Channel::Other][(random.next() % 4) as usize];
    receive.service_area = Some(AREAS[(random.next() % 4) as usize]);
    receive.contract_id = ContractId::parse(CONTRACTS[(random.next() % 2) as usize]).ok();
    let mut at = received_at;
    let mut commands = vec![(at, TicketCommand::Receive(receive))];
    if random.chance(0.04) {
        at += random.minutes(5, 600);
        commands.push((at, sample::out_of_scope()));
        return commands;
    }
    at += random.minutes(1, 120);
    commands.push((at, sample::acknowledge()));
    let category = if random.chance(0.25) { Category::Complaint } else { CATEGORIES[(random.next() % 4) as usize] };
    at += random.minutes(30, 3 * 24 * 60);
    commands.push((at, sample::investigate(category)));
    if random.chance(0.10) {
        at += random.minutes(10, 24 * 60);
        commands.push((at, sample::escalate(DIVISIONS[(random.next() % 4) as usize])));
        at += random.minutes(60, 10 * 24 * 60);
        commands.push((at, sample::answer_escalation()));
        at += random.minutes(5, 120);
        commands.push((at, sample::agent_reply()));
    }
    at += random.minutes(30, 7 * 24 * 60);
    let TicketCommand::Resolve { resolution, within_own_authority, complaint_outcome, rejection_reasons, .. } =
        sample::resolve()
    else {
        unreachable!()
    };
    let root_cause = RootCause::parse(CAUSES[(random.next() % 6) as usize]).expect("valid");
    let resolve =
        TicketCommand::Resolve { resolution, root_cause, within_own_authority, complaint_outcome, rejection_reasons };
    commands.push((at, resolve));
    at += random.minutes(60, 3 * 24 * 60);
    commands.push((at, TicketCommand::Close));
    commands.push((at, sample::survey_sent()));
    if random.chance(0.60) {
        at += random.minutes(30, 7 * 24 * 60);
        commands.push((at, sample::answer_survey(1 + (random.next() % 5) as u8)));
    }
    // Whatever lies beyond the end of the history has not happened yet: the ticket stays open.
    commands.retain(|(when, _)| *when <= end);
    commands
}

/// The generated history: every event with its ticket and time, in time order.
pub fn generate(tickets: usize, days: i64) -> Vec<(DateTime<Utc>, usize, TicketEvent)> {
    let start: DateTime<Utc> = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(7, 0, 0).unwrap().and_utc();
    let end = start + chrono::Duration::days(days);
    let spacing = chrono::Duration::days(days).num_seconds() as f64 * 0.98 / tickets as f64;
    let mut random = Random(2026);
    let mut events = Vec::new();
    for index in 0..tickets {
        let received_at = start + chrono::Duration::seconds((index as f64 * spacing) as i64);
        let mut ticket = Ticket::default();
        for (at, command) in plan(&mut random, index as u64 + 1, received_at, end) {
            let decided = ticket.decide(command, at).expect("the plan follows the workflow");
            for event in decided {
                ticket = ticket.evolve(&event, at);
                events.push((at, index, event));
            }
        }
    }
    events.sort_by_key(|(at, index, _)| (*at, *index));
    events
}

/// Appends the history in time order, `WINDOW` events at a time, concurrently within a window.
pub async fn load(
    store: &SharedStore,
    tickets: usize,
    history: &[(DateTime<Utc>, usize, TicketEvent)],
) -> anyhow::Result<()> {
    const WINDOW: usize = 512;
    let ids: Vec<TicketId> = (0..tickets).map(|_| TicketId::new()).collect();
    let mut versions = vec![0u64; tickets];
    let context = CommandContext::new(Actor::Staff { name: "kata".into(), role: Role::Agent });
    for window in history.chunks(WINDOW) {
        let mut by_ticket: Vec<(usize, Vec<event_store::NewEvent>)> = Vec::new();
        for (at, index, event) in window {
            let new = to_new_event(event, &context, *at);
            match by_ticket.iter_mut().find(|(i, _)| i == index) {
                Some((_, list)) => list.push(new),
                None => by_ticket.push((*index, vec![new])),
            }
        }
        let appends = by_ticket.into_iter().map(|(index, events)| {
            let expected = ExpectedVersion(versions[index]);
            versions[index] += events.len() as u64;
            let stream = event_store::StreamId::parse(&ids[index].stream_name()).expect("a valid stream name");
            let store = store.clone();
            async move { store.append(&stream, expected, events).await }
        });
        for outcome in futures::future::join_all(appends).await {
            outcome?;
        }
    }
    Ok(())
}
