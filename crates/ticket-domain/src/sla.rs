//! SLA clocks: a ticket's due times, computed from its history, its contract's targets and the
//! contract's business calendar. Pure: the same history gives the same clocks, whenever.
//!
//! - **First contact** runs from receipt to the first contact (`Investigated`).
//! - **Resolution** runs from receipt to the resolution (`Resolved`); a reopen sets it running
//!   again, with the time already used still counted. When the contract says so, it pauses
//!   while the ticket waits for the customer: from an agent's reply to the customer's answer.
//! - **Statutory answer** (complaints only; Act CLV of 1997 §17/A): 30 calendar days from
//!   receipt, to the end of that day in the calendar's time zone, met by the resolution.
//!
//! A clock warns at a share of its target (80% by default) and is breached at its due time.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::TicketEvent;
use crate::calendar::BusinessCalendar;
use crate::registry::ContractTerms;
use crate::vocabulary::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SlaTarget {
    FirstContact,
    Resolution,
    StatutoryAnswer,
    /// A division's answer to the ticket's latest escalation, in the division's answer time.
    EscalationAnswer,
}

/// What the clocks are measured against.
#[derive(Debug, Clone, Copy)]
pub struct SlaPolicy<'a> {
    /// The ticket's contract, if it has one with targets.
    pub terms: Option<&'a ContractTerms>,
    pub calendar: &'a BusinessCalendar,
    /// Calendar days for the statutory answer to a complaint; `None`: not tracked.
    pub statutory_days: Option<u32>,
    /// Warn when this share of the target is used (1-99).
    pub warn_percent: u8,
    /// The answer time (business minutes) of the division holding the latest escalation.
    pub division_answer_minutes: Option<u32>,
}

/// One clock of one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaClock {
    pub target: SlaTarget,
    /// When it warns; `None` while paused before reaching it.
    pub warn_at: Option<DateTime<Utc>>,
    /// When it is due; `None` while paused before reaching it.
    pub due_at: Option<DateTime<Utc>>,
    /// When it stopped because its step was done (`None`: still running or paused).
    pub met_at: Option<DateTime<Utc>>,
    pub paused: bool,
}

impl SlaClock {
    /// Whether the step was done in time (`None` while it runs).
    pub fn met_in_time(&self) -> Option<bool> {
        let met = self.met_at?;
        Some(self.due_at.is_none_or(|due| met <= due))
    }

    /// Whether the clock is past due at `now` (done late, or still running past its due time).
    pub fn breached_at(&self, now: DateTime<Utc>) -> bool {
        match (self.due_at, self.met_at) {
            (Some(due), Some(met)) => met > due,
            (Some(due), None) => now > due,
            (None, _) => false,
        }
    }
}

/// A clock's running periods, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Runs {
    /// Closed running periods.
    done: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The period running now, from this instant.
    running_since: Option<DateTime<Utc>>,
    met_at: Option<DateTime<Utc>>,
}

impl Runs {
    fn start(&mut self, at: DateTime<Utc>) {
        if self.running_since.is_none() {
            self.running_since = Some(at);
            self.met_at = None;
        }
    }
    fn stop(&mut self, at: DateTime<Utc>, met: bool) {
        if let Some(since) = self.running_since.take() {
            self.done.push((since, at));
        }
        if met {
            self.met_at = Some(at);
        }
    }
}

/// The instant at which `target` of business time has run, over the closed periods and then the
/// running one; `None` when paused before reaching it (or a calendar without open hours).
fn reached(calendar: &BusinessCalendar, runs: &Runs, target: Duration) -> Option<DateTime<Utc>> {
    let mut left = target;
    for &(from, to) in &runs.done {
        let used = calendar.elapsed(from, to);
        if used >= left {
            return calendar.add(from, left);
        }
        left -= used;
    }
    let since = runs.running_since.or_else(|| runs.done.last().map(|&(_, to)| to).filter(|_| runs.met_at.is_some()))?;
    calendar.add(since, left)
}

fn business_clock(target: SlaTarget, minutes: u32, runs: &Runs, policy: &SlaPolicy<'_>) -> SlaClock {
    let total = Duration::minutes(i64::from(minutes));
    let warn = Duration::seconds(total.num_seconds() * i64::from(policy.warn_percent.clamp(1, 99)) / 100);
    let paused = runs.running_since.is_none() && runs.met_at.is_none();
    SlaClock {
        target,
        // While paused, only a time already reached before the pause is known.
        warn_at: reached(policy.calendar, runs, warn),
        due_at: reached(policy.calendar, runs, total),
        met_at: runs.met_at,
        paused,
    }
}

/// What the clocks need to know of a ticket, folded from its events one at a time (so that a
/// projection can keep it up to date without reading the whole history again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaFacts {
    /// Events folded.
    pub version: u64,
    pub received_at: Option<DateTime<Utc>>,
    pub category: Option<Category>,
    pub priority: crate::vocabulary::Priority,
    pub contract_id: Option<crate::vocabulary::ContractId>,
    first_contact: Runs,
    resolution: Runs,
    /// The resolution clock as it runs for a contract that pauses while waiting for the customer.
    resolution_pausing: Runs,
    resolved_at: Option<DateTime<Utc>>,
    pub out_of_scope: bool,
    /// The division of the latest escalation, and that escalation's clock.
    pub division: Option<crate::vocabulary::DivisionId>,
    escalation: Runs,
    /// Clocks whose warning, and whose breach, is recorded.
    pub warned: std::collections::BTreeSet<SlaTarget>,
    pub breached: std::collections::BTreeSet<SlaTarget>,
}

impl SlaFacts {
    pub fn evolve(mut self, event: &TicketEvent, at: DateTime<Utc>) -> Self {
        self.version += 1;
        match event {
            TicketEvent::Received(received) => {
                self.received_at = Some(at);
                self.category = received.category;
                self.priority = received.priority;
                self.contract_id = received.contract_id.clone();
                self.first_contact.start(at);
                self.resolution.start(at);
                self.resolution_pausing.start(at);
            }
            TicketEvent::Investigated(investigated) => {
                self.category = Some(investigated.category);
                self.first_contact.stop(at, true);
            }
            TicketEvent::Reclassified(reclassified) => self.category = reclassified.category.or(self.category),
            TicketEvent::ContractLinked(linked) => self.contract_id = Some(linked.contract_id.clone()),
            TicketEvent::Prioritised(prioritised) => self.priority = prioritised.priority,
            TicketEvent::Resolved(_) => {
                self.resolution.stop(at, true);
                self.resolution_pausing.stop(at, true);
                self.resolved_at = Some(at);
            }
            TicketEvent::Reopened(_) => {
                self.resolution.start(at);
                self.resolution_pausing.start(at);
                self.resolved_at = None;
            }
            TicketEvent::AgentReplied(_) if self.resolved_at.is_none() => self.resolution_pausing.stop(at, false),
            TicketEvent::CustomerReplied(_) if self.resolved_at.is_none() => self.resolution_pausing.start(at),
            TicketEvent::MarkedOutOfScope(_) => self.out_of_scope = true,
            TicketEvent::Escalated(escalated) => {
                // Each escalation has its own clock.
                self.division = Some(escalated.division.clone());
                self.escalation = Runs::default();
                self.escalation.start(at);
                self.warned.remove(&SlaTarget::EscalationAnswer);
                self.breached.remove(&SlaTarget::EscalationAnswer);
            }
            TicketEvent::EscalationAnswered(_) => self.escalation.stop(at, true),
            TicketEvent::SlaWarned(warned) => {
                self.warned.insert(warned.target);
            }
            TicketEvent::SlaBreached(breached) => {
                self.breached.insert(breached.target);
            }
            _ => {}
        }
        self
    }

    /// The ticket's clocks under `policy` (the contract's terms, its calendar).
    pub fn clocks(&self, policy: &SlaPolicy<'_>) -> Vec<SlaClock> {
        let Some(received_at) = self.received_at.filter(|_| !self.out_of_scope) else {
            return Vec::new();
        };
        let mut clocks = Vec::new();
        if let Some(terms) = policy.terms {
            let targets = terms.targets_for(self.category, self.priority);
            if let Some(minutes) = targets.first_contact_minutes {
                clocks.push(business_clock(SlaTarget::FirstContact, minutes, &self.first_contact, policy));
            }
            let resolution =
                if terms.pause_while_waiting_for_customer { &self.resolution_pausing } else { &self.resolution };
            if let Some(minutes) = targets.resolution_minutes {
                clocks.push(business_clock(SlaTarget::Resolution, minutes, resolution, policy));
            }
        }
        if let (Some(minutes), Some(_)) = (policy.division_answer_minutes, &self.division) {
            clocks.push(business_clock(SlaTarget::EscalationAnswer, minutes, &self.escalation, policy));
        }
        if let (Some(days), Some(Category::Complaint)) = (policy.statutory_days, self.category) {
            let tz = policy.calendar.time_zone;
            let last_day = received_at.with_timezone(&tz).date_naive() + Duration::days(i64::from(days));
            let end_of_day = last_day.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default());
            let due = tz.from_local_datetime(&end_of_day).earliest().map(|t| t.with_timezone(&Utc));
            let share = i32::from(policy.warn_percent.clamp(1, 99));
            clocks.push(SlaClock {
                target: SlaTarget::StatutoryAnswer,
                warn_at: due.map(|due| received_at + (due - received_at) * share / 100),
                due_at: due,
                met_at: self.resolved_at,
                paused: false,
            });
        }
        clocks
    }
}

/// The ticket's clocks, from its history (each event with the instant it happened).
pub fn clocks(history: &[(&TicketEvent, DateTime<Utc>)], policy: &SlaPolicy<'_>) -> Vec<SlaClock> {
    history.iter().fold(SlaFacts::default(), |facts, (event, at)| facts.evolve(event, *at)).clocks(policy)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono_tz::Europe::Budapest;

    use super::*;
    use crate::event as ev;
    use crate::registry::SlaTargets;
    use crate::vocabulary::*;

    fn at(d: u32, m: u32, h: u32, min: u32) -> DateTime<Utc> {
        Budapest.with_ymd_and_hms(2026, m, d, h, min, 0).single().unwrap().with_timezone(&Utc)
    }

    fn received(category: Option<Category>) -> TicketEvent {
        let crate::TicketCommand::Receive(mut receive) = crate::TicketCommand::Receive(crate::sample::receive(1))
        else {
            unreachable!()
        };
        receive.category = category;
        crate::Ticket::default().decide(crate::TicketCommand::Receive(receive), at(1, 4, 9, 0)).unwrap().remove(0)
    }

    fn investigated(category: Category) -> TicketEvent {
        TicketEvent::Investigated(ev::Investigated {
            category,
            service_area: ServiceArea::Norma,
            contact_method: ContactMethod::Phone,
        })
    }

    fn resolved() -> TicketEvent {
        TicketEvent::Resolved(ev::Resolved {
            root_cause: RootCause::parse("billing").unwrap(),
            within_own_authority: true,
            complaint_outcome: ComplaintOutcome::Upheld,
            personal: ev::ResolutionText { resolution: MessageBody::parse("Done.").unwrap(), rejection_reasons: None },
        })
    }

    fn reply() -> TicketEvent {
        TicketEvent::AgentReplied(ev::AgentReplied {
            personal: ev::MessageText { body: MessageBody::parse("?").unwrap() },
        })
    }

    fn customer() -> TicketEvent {
        TicketEvent::CustomerReplied(ev::CustomerReplied {
            channel: Channel::Email,
            message_id: None,
            personal: ev::CustomerMessage { from: None, body: MessageBody::parse("!").unwrap(), attachments: vec![] },
        })
    }

    fn terms(pause: bool) -> ContractTerms {
        ContractTerms {
            customer: "ACME".into(),
            email_domains: vec![],
            email_addresses: vec![],
            sla: SlaTargets { first_contact_minutes: Some(8 * 60), resolution_minutes: Some(5 * 8 * 60) },
            sla_by_category: BTreeMap::from([(
                Category::Complaint,
                SlaTargets { first_contact_minutes: Some(2 * 60), resolution_minutes: Some(2 * 8 * 60) },
            )]),
            sla_by_priority: BTreeMap::from([(
                Priority::Urgent,
                SlaTargets { first_contact_minutes: Some(30), resolution_minutes: None },
            )]),
            calendar: "hu".into(),
            working_hours: None,
            time_zone: None,
            pause_while_waiting_for_customer: pause,
            warn_percent: None,
        }
    }

    fn run(history: &[(TicketEvent, DateTime<Utc>)], terms: &ContractTerms) -> Vec<SlaClock> {
        let calendar = BusinessCalendar::hungary_default().unwrap();
        let policy = SlaPolicy {
            terms: Some(terms),
            calendar: &calendar,
            statutory_days: Some(30),
            warn_percent: 80,
            division_answer_minutes: None,
        };
        let borrowed: Vec<_> = history.iter().map(|(e, t)| (e, *t)).collect();
        clocks(&borrowed, &policy)
    }

    #[test]
    fn first_contact_and_resolution_run_in_business_hours_across_easter() {
        // Received Wednesday 1 April 2026 09:00; Good Friday to Easter Monday are closed.
        let history = [(received(None), at(1, 4, 9, 0))];
        let clocks = run(&history, &terms(false));
        assert_eq!(clocks.len(), 2, "no statutory clock: not a complaint");
        assert_eq!(clocks[0].target, SlaTarget::FirstContact);
        assert_eq!(clocks[0].due_at, Some(at(2, 4, 9, 0)), "8 business hours: Wednesday 7, Thursday 1");
        assert_eq!(clocks[0].warn_at, Some(at(1, 4, 15, 24)), "80% of 8 h = 6 h 24 min");
        // 40 business hours: Wed 7, Thu 8, (Fri-Mon closed), Tue 8, Wed 8, Thu 8 → Fri 10 April 09:00.
        assert_eq!(clocks[1].due_at, Some(at(10, 4, 9, 0)));
        assert!(!clocks[0].breached_at(at(2, 4, 8, 59)) && clocks[0].breached_at(at(2, 4, 9, 1)));
    }

    #[test]
    fn a_priority_change_moves_the_due_time_to_the_priority_target() {
        let prioritised = TicketEvent::Prioritised(ev::Prioritised {
            priority: Priority::Urgent,
            previous_priority: Priority::Normal,
            reason: Reason::parse("production stopped").unwrap(),
        });
        let history = [(received(None), at(1, 4, 9, 0)), (prioritised, at(1, 4, 9, 10))];
        let clocks = run(&history, &terms(false));
        assert_eq!(clocks[0].due_at, Some(at(1, 4, 9, 30)), "urgent: 30 business minutes from receipt");
        assert_eq!(clocks[1].due_at, Some(at(10, 4, 9, 0)), "the resolution target is inherited");
    }

    #[test]
    fn a_complaint_gets_its_category_targets_and_the_statutory_thirty_days() {
        let history = [
            (received(None), at(1, 4, 9, 0)),
            (investigated(Category::Complaint), at(1, 4, 10, 30)),
            (resolved(), at(8, 4, 12, 0)),
        ];
        let clocks = run(&history, &terms(false));
        let by = |target| clocks.iter().find(|c| c.target == target).unwrap().clone();
        let first = by(SlaTarget::FirstContact);
        assert_eq!((first.due_at, first.met_at), (Some(at(1, 4, 11, 0)), Some(at(1, 4, 10, 30))));
        assert_eq!(first.met_in_time(), Some(true));
        // 16 business hours from Wed 09:00: Wed 7, Thu 8, then Tuesday 7 April 08:00 + 1 h; met Wed 8 April: late.
        let resolution = by(SlaTarget::Resolution);
        assert_eq!(resolution.due_at, Some(at(7, 4, 9, 0)));
        assert_eq!(resolution.met_in_time(), Some(false));
        let statutory = by(SlaTarget::StatutoryAnswer);
        assert_eq!(statutory.due_at, Some(at(1, 5, 23, 59) + Duration::seconds(59)), "the end of 1 May, local time");
        assert_eq!(statutory.met_in_time(), Some(true));
    }

    #[test]
    fn the_resolution_clock_pauses_while_waiting_for_the_customer_when_the_contract_says_so() {
        let base = [
            (received(None), at(6, 5, 9, 0)),
            (investigated(Category::UserSupport), at(6, 5, 9, 30)),
            (reply(), at(6, 5, 10, 0)),
        ];
        // Waiting: paused, no due time yet.
        let waiting = run(&base, &terms(true));
        let resolution = waiting.iter().find(|c| c.target == SlaTarget::Resolution).unwrap();
        assert!(resolution.paused && resolution.due_at.is_none());
        // The customer answers two business days later: the 1 h used before still counts.
        let mut answered = base.to_vec();
        answered.push((customer(), at(8, 5, 10, 0)));
        let clocks = run(&answered, &terms(true));
        let resolution = clocks.iter().find(|c| c.target == SlaTarget::Resolution).unwrap();
        // 40 h − 1 h used = 39 h from Fri 8 May 10:00: Fri 6, Mon-Thu 32 (4 × 8), Fri 15 May 1 h → 09:00.
        assert_eq!(resolution.due_at, Some(at(15, 5, 9, 0)));
        // Without the contract's pause, the same history is due 40 h after receipt.
        let unpaused = run(&answered, &terms(false));
        let resolution = unpaused.iter().find(|c| c.target == SlaTarget::Resolution).unwrap();
        assert_eq!(resolution.due_at, Some(at(13, 5, 9, 0)));
    }

    #[test]
    fn a_reopen_runs_the_resolution_clock_again_with_the_time_used() {
        let history = [
            (received(None), at(6, 5, 9, 0)),
            (investigated(Category::BugReport), at(6, 5, 9, 30)),
            (resolved(), at(6, 5, 11, 0)),
            (TicketEvent::Reopened(ev::Reopened { reason: Reason::parse("still broken").unwrap() }), at(11, 5, 9, 0)),
        ];
        let clocks = run(&history, &terms(false));
        let resolution = clocks.iter().find(|c| c.target == SlaTarget::Resolution).unwrap();
        assert_eq!(resolution.met_at, None);
        // 2 h used before; 38 h from Mon 11 May 09:00: Mon 7, Tue-Thu 24, Fri 7 → Fri 15 May 15:00.
        assert_eq!(resolution.due_at, Some(at(15, 5, 15, 0)));
    }

    #[test]
    fn out_of_scope_and_contractless_tickets_have_no_business_clocks() {
        let history = [
            (received(None), at(6, 5, 9, 0)),
            (
                TicketEvent::MarkedOutOfScope(ev::MarkedOutOfScope { reason: Reason::parse("spam").unwrap() }),
                at(6, 5, 9, 5),
            ),
        ];
        assert!(run(&history, &terms(false)).is_empty());
        let calendar = BusinessCalendar::hungary_default().unwrap();
        let policy = SlaPolicy {
            terms: None,
            calendar: &calendar,
            statutory_days: Some(30),
            warn_percent: 80,
            division_answer_minutes: None,
        };
        let complaint = received(Some(Category::Complaint));
        let only_statutory = clocks(&[(&complaint, at(6, 5, 9, 0))], &policy);
        assert_eq!(only_statutory.len(), 1);
        assert_eq!(only_statutory[0].target, SlaTarget::StatutoryAnswer);
    }

    #[test]
    fn each_escalation_has_its_own_answer_clock_in_the_divisions_time() {
        let escalated = || {
            TicketEvent::Escalated(ev::Escalated {
                division: DivisionId::parse("legal").unwrap(),
                reason: Reason::parse("contract question").unwrap(),
            })
        };
        let answered = || {
            TicketEvent::EscalationAnswered(ev::EscalationAnswered {
                division: DivisionId::parse("legal").unwrap(),
                outcome: Reason::parse("done").unwrap(),
            })
        };
        let breached =
            TicketEvent::SlaBreached(ev::SlaBreached { target: SlaTarget::EscalationAnswer, due_at: at(6, 5, 14, 0) });
        let history = [
            (received(None), at(6, 5, 9, 0)),
            (investigated(Category::BugReport), at(6, 5, 9, 30)),
            (escalated(), at(6, 5, 10, 0)),
            (breached, at(6, 5, 14, 1)),
            (answered(), at(6, 5, 15, 0)),
        ];
        let calendar = BusinessCalendar::hungary_default().unwrap();
        let policy = SlaPolicy {
            terms: None,
            calendar: &calendar,
            statutory_days: None,
            warn_percent: 80,
            division_answer_minutes: Some(4 * 60),
        };
        let facts = history.iter().fold(SlaFacts::default(), |f, (e, t)| f.evolve(e, *t));
        let clocks = facts.clocks(&policy);
        assert_eq!(clocks.len(), 1);
        assert_eq!((clocks[0].due_at, clocks[0].met_in_time()), (Some(at(6, 5, 14, 0)), Some(false)));
        assert!(facts.breached.contains(&SlaTarget::EscalationAnswer));
        // Escalated again on Friday 15:00: a new clock, due Monday 11:00, not yet breached.
        let again = facts.evolve(&escalated(), at(8, 5, 15, 0));
        let clocks = again.clocks(&policy);
        assert_eq!((clocks[0].due_at, clocks[0].met_at), (Some(at(11, 5, 11, 0)), None));
        assert!(!again.breached.contains(&SlaTarget::EscalationAnswer));
    }
}
