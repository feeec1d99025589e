//! `statistics`: the complaint statistics of the quality managers, counted per calendar day.
//!
//! Each event adds facts (counts and durations, with the ticket's dimensions at that moment)
//! to its day's row; [`query`] turns a period of days into the figures. Every figure is defined
//! in `projections/STATISTICS.md`.

pub mod facts;
pub mod marks;
pub mod query;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_store::{RecordedEvent, SharedStore};
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::TicketId;

use crate::fold::{Fold, FoldCache};
use crate::{Projection, Transaction};
use facts::{COMPLAINT, Count, Day, DayFacts, Dims, Measure, NewFact, What, day_of};

const FOLDED_TICKETS_MAX: usize = 50_000;

/// What the statistics need to know of a ticket to turn its next event into facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTicket {
    version: u64,
    received_at: Option<DateTime<Utc>>,
    dims: Dims,
    /// The division holding the ticket now (escalated to it, not yet answered).
    division: Option<String>,
    /// Received and not closed (a resolved ticket waiting to be closed is open).
    open: bool,
    acknowledged: bool,
    contacted: bool,
    escalated_at: Option<DateTime<Utc>>,
    /// The divisions the ticket went to since its receipt or its last resolution.
    escalated_since_resolution: Vec<String>,
    survey_sent_day: Option<Day>,
}

impl Fold for StatsTicket {
    fn version(&self) -> u64 {
        self.version
    }

    fn evolve(self, event: &TicketEvent, at: DateTime<Utc>) -> Self {
        self.step(event, at, &mut Vec::new())
    }
}

fn seconds_between(from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> u32 {
    from.map_or(0, |from| (to - from).num_seconds().clamp(0, u32::MAX as i64) as u32)
}

impl StatsTicket {
    /// Applies one event and appends the facts it adds.
    pub fn step(mut self, event: &TicketEvent, at: DateTime<Utc>, facts: &mut Vec<NewFact>) -> Self {
        self.version += 1;
        let day = day_of(at);
        if let TicketEvent::Received(received) = event {
            self.received_at = Some(at);
            self.dims = Dims {
                category: facts::category_code(received.category),
                service_area: facts::service_area_code(received.service_area),
                channel: facts::channel_code(received.channel),
                division: 0,
            };
            self.open = true;
            self.emit(facts, day, What::Count(Count::Received, 1));
            self.emit(facts, day, What::Count(Count::Open, 1));
            if self.dims.category == COMPLAINT {
                self.emit(facts, day, What::Count(Count::BecameComplaint, 1));
            }
            return self;
        }
        if self.received_at.is_none() {
            return self;
        }
        match event {
            TicketEvent::Received(_) => unreachable!("handled above"),
            TicketEvent::Acknowledged(_) => {
                if !self.acknowledged {
                    self.acknowledged = true;
                    let seconds = seconds_between(self.received_at, at);
                    self.emit(facts, day, What::Duration(Measure::ToAcknowledge, seconds));
                }
            }
            TicketEvent::Investigated(investigated) => {
                let category = facts::category_code(Some(investigated.category));
                let area = facts::service_area_code(Some(investigated.service_area));
                self.move_to(facts, day, category, area, self.division.clone());
                if !self.contacted {
                    self.contacted = true;
                    let seconds = seconds_between(self.received_at, at);
                    self.emit(facts, day, What::Duration(Measure::ToFirstContact, seconds));
                }
            }
            TicketEvent::Reclassified(reclassified) => {
                let category = reclassified.category.map_or(self.dims.category, |c| facts::category_code(Some(c)));
                let area =
                    reclassified.service_area.map_or(self.dims.service_area, |a| facts::service_area_code(Some(a)));
                self.move_to(facts, day, category, area, self.division.clone());
            }
            TicketEvent::Escalated(escalated) => {
                let division = escalated.division.to_string();
                self.move_to(facts, day, self.dims.category, self.dims.service_area, Some(division.clone()));
                self.emit(facts, day, What::Count(Count::Escalated, 1));
                if !self.escalated_since_resolution.contains(&division) {
                    self.escalated_since_resolution.push(division);
                }
                self.escalated_at = Some(at);
            }
            TicketEvent::EscalationAnswered(answered) => {
                let division = Some(answered.division.to_string());
                let seconds = seconds_between(self.escalated_at, at);
                self.emit_with(facts, day, division.clone(), What::Count(Count::EscalationAnswered, 1));
                self.emit_with(facts, day, division, What::Duration(Measure::EscalationAnswer, seconds));
                self.escalated_at = None;
                self.move_to(facts, day, self.dims.category, self.dims.service_area, None);
            }
            TicketEvent::Resolved(resolved) => {
                let seconds = seconds_between(self.received_at, at);
                self.emit(facts, day, What::Count(Count::Resolved, 1));
                self.emit(facts, day, What::Duration(Measure::ToResolution, seconds));
                self.emit(facts, day, What::RootCause(resolved.root_cause.to_string()));
                for division in std::mem::take(&mut self.escalated_since_resolution) {
                    self.emit_with(facts, day, Some(division), What::Count(Count::ResolvedAfterEscalation, 1));
                }
            }
            TicketEvent::Closed(_) => {
                self.emit(facts, day, What::Count(Count::Closed, 1));
                self.close(facts, day);
            }
            TicketEvent::MarkedOutOfScope(_) => {
                self.emit(facts, day, What::Count(Count::OutOfScope, 1));
                self.close(facts, day);
            }
            TicketEvent::Reopened(_) => {
                self.emit(facts, day, What::Count(Count::Reopened, 1));
                self.survey_sent_day = None;
                if !self.open {
                    self.open = true;
                    self.division = None;
                    self.emit(facts, day, What::Count(Count::Open, 1));
                }
            }
            TicketEvent::SurveySent(_) => {
                self.survey_sent_day = Some(day);
                self.emit(facts, day, What::Count(Count::SurveySent, 1));
            }
            TicketEvent::SurveyAnswered(answered) => {
                let sent_day = self.survey_sent_day.unwrap_or(day);
                let score = answered.score.get();
                self.emit(facts, day, What::Count(Count::SurveyAnswered { score, sent_day }, 1));
            }
            TicketEvent::Assigned(_)
            // Priorities count in the SLA clocks, not in these statistics.
            | TicketEvent::Prioritised(_)
            | TicketEvent::CustomerReplied(_)
            | TicketEvent::AgentReplied(_)
            | TicketEvent::NoteAdded(_)
            // The statistics are not broken down by contract (yet).
            | TicketEvent::ContractLinked(_)
            | TicketEvent::SlaWarned(_)
            | TicketEvent::SlaBreached(_)
            // Erasure changes no figure: the statistics hold no personal data.
            | TicketEvent::ProcessingRestricted(_)
            | TicketEvent::PersonalDataErased(_)
            | TicketEvent::PersonalDataSealed(_) => {}
        }
        self
    }

    fn emit(&self, facts: &mut Vec<NewFact>, day: Day, what: What) {
        self.emit_with(facts, day, self.division.clone(), what);
    }

    fn emit_with(&self, facts: &mut Vec<NewFact>, day: Day, division: Option<String>, what: What) {
        facts.push(NewFact { day, dims: self.dims, division, what });
    }

    fn close(&mut self, facts: &mut Vec<NewFact>, day: Day) {
        if self.open {
            self.emit(facts, day, What::Count(Count::Open, -1));
            self.open = false;
        }
        self.division = None;
        self.escalated_at = None;
    }

    /// Moves the ticket to new dimensions: out of the old ones' backlog and into the new
    /// ones', and in or out of the complaints.
    fn move_to(&mut self, facts: &mut Vec<NewFact>, day: Day, category: u8, area: u8, division: Option<String>) {
        let unchanged = category == self.dims.category && area == self.dims.service_area && division == self.division;
        if unchanged {
            return;
        }
        if self.open {
            self.emit(facts, day, What::Count(Count::Open, -1));
        }
        let was_complaint = self.dims.category == COMPLAINT;
        if was_complaint && category != COMPLAINT {
            self.emit(facts, day, What::Count(Count::CeasedComplaint, 1));
        }
        self.dims.category = category;
        self.dims.service_area = area;
        self.division = division;
        if self.open {
            self.emit(facts, day, What::Count(Count::Open, 1));
        }
        if !was_complaint && category == COMPLAINT {
            self.emit(facts, day, What::Count(Count::BecameComplaint, 1));
        }
    }
}

/// A batch's facts by day, each day with the position of the last event that added to it (the
/// row's `revision`: what changed it, whatever the batches were, so a rebuild writes the same).
type Pending = BTreeMap<Day, (Vec<NewFact>, i64)>;

/// The statistics projection: one `stats_days` row per calendar day.
#[derive(Clone)]
pub struct Statistics {
    folded: FoldCache<StatsTicket>,
    /// The current batch's facts, by day, with each day's last position; written when the
    /// batch ends.
    pending: Arc<Mutex<Pending>>,
}

impl Statistics {
    pub fn new(store: SharedStore) -> Self {
        Self { folded: FoldCache::new(store, FOLDED_TICKETS_MAX), pending: Arc::default() }
    }
}

impl Projection for Statistics {
    fn name(&self) -> &'static str {
        "statistics"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["stats_days"]
    }

    async fn apply(
        &self,
        transaction: &mut Transaction<'_>,
        ticket_id: TicketId,
        event: &RecordedEvent,
        decoded: &TicketEvent,
    ) -> Result<(), sqlx::Error> {
        let _ = transaction;
        let mut facts = Vec::new();
        let ticket = self.folded.before(ticket_id, event).await?.step(decoded, event.occurred_at, &mut facts);
        self.folded.put(ticket_id, ticket);
        let mut pending = self.pending.lock().expect("pending facts");
        for fact in facts {
            let day = pending.entry(fact.day).or_default();
            day.0.push(fact);
            day.1 = day.1.max(event.position.0);
        }
        Ok(())
    }

    fn begin_batch(&self) {
        *self.pending.lock().expect("pending facts") = Default::default();
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending facts"));
        for (day, (facts, revision)) in pending {
            let mut stored = match load_day(transaction, day).await? {
                Some(bytes) => DayFacts::decode(&bytes)
                    .map_err(|e| sqlx::Error::Protocol(format!("the statistics of day {day} are unreadable: {e}")))?,
                None => DayFacts::default(),
            };
            stored.merge(facts);
            store_day(transaction, day, revision, &stored.encode()).await?;
        }
        Ok(())
    }
}

async fn load_day(transaction: &mut Transaction<'_>, day: Day) -> Result<Option<Vec<u8>>, sqlx::Error> {
    match transaction {
        Transaction::Sqlite(connection) => {
            sqlx::query_scalar("SELECT facts FROM stats_days WHERE day = ?1")
                .bind(day)
                .fetch_optional(&mut **connection)
                .await
        }
        Transaction::Postgres(connection) => {
            sqlx::query_scalar("SELECT facts FROM stats_days WHERE day = $1")
                .bind(day)
                .fetch_optional(&mut **connection)
                .await
        }
    }
}

async fn store_day(
    transaction: &mut Transaction<'_>,
    day: Day,
    revision: i64,
    facts: &[u8],
) -> Result<(), sqlx::Error> {
    match transaction {
        Transaction::Sqlite(connection) => {
            sqlx::query(
                "INSERT INTO stats_days (day, revision, facts) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (day) DO UPDATE SET revision = excluded.revision, facts = excluded.facts",
            )
            .bind(day)
            .bind(revision)
            .bind(facts)
            .execute(&mut **connection)
            .await?;
        }
        Transaction::Postgres(connection) => {
            sqlx::query(
                "INSERT INTO stats_days (day, revision, facts) VALUES ($1, $2, $3) \
                 ON CONFLICT (day) DO UPDATE SET revision = excluded.revision, facts = excluded.facts",
            )
            .bind(day)
            .bind(revision)
            .bind(facts)
            .execute(&mut **connection)
            .await?;
        }
    }
    Ok(())
}
