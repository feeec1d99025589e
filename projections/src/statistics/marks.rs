//! `stats_marks`: each fact a dashboard chart can drill into, with the ticket it is about.
//!
//! The day statistics ([`super::Statistics`]) keep counts, not tickets: a two-year report reads
//! ~730 rows. The list behind a bar needs the tickets, so this projection folds each ticket
//! with the same [`StatsTicket::step`] and writes one row per counted fact of the kinds below,
//! with the ticket's dimensions at that moment. A list filtered like its bar therefore holds
//! exactly what the bar counts: the same facts, from the same fold.
//!
//! A projection of its own (its own checkpoint): a database made before it fills the table from
//! the log on its next start while the day statistics stay whole.

use chrono::{DateTime, Utc};
use event_store::{Database, RecordedEvent, SharedStore, StoreError};
use std::sync::{Arc, Mutex};
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::TicketId;

use super::StatsTicket;
use super::facts::{Count, Day, Dims, NewFact, What};
use super::query::Filter;
use crate::fold::FoldCache;
use crate::{Projection, Transaction};

const FOLDED_TICKETS_MAX: usize = 50_000;
/// Rows per SQLite statement (11 parameters each: well under SQLite's 32,766).
const ROWS_PER_STATEMENT: usize = 500;

/// What a mark counts; stored by its code, which never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    Received,
    Resolved,
    BecameComplaint,
    Escalated,
    EscalationAnswered,
    /// A resolution's root cause (the cause in `detail`).
    RootCause,
    SurveySent,
    /// An answer (the score in `detail`, the day its survey was sent in `sent_day`).
    SurveyAnswered,
}

impl Mark {
    pub fn code(self) -> i16 {
        match self {
            Mark::Received => 1,
            Mark::Resolved => 2,
            Mark::BecameComplaint => 3,
            Mark::Escalated => 4,
            Mark::EscalationAnswered => 5,
            Mark::RootCause => 6,
            Mark::SurveySent => 7,
            Mark::SurveyAnswered => 8,
        }
    }
}

/// One fact's mark, as the projection writes it and a drill-down reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
    pub day: Day,
    pub dims: Dims,
    pub division: Option<String>,
    pub detail: Option<String>,
    pub sent_day: Option<Day>,
    pub ticket_id: uuid::Uuid,
    pub at: DateTime<Utc>,
}

impl MarkRow {
    /// Whether the statistics' `filter` admits this fact, as it admits the fact's count.
    pub fn admitted_by(&self, filter: &Filter) -> bool {
        filter.admits_named(&self.dims, self.division.as_deref())
    }
}

/// The mark a fact leaves, if any: only what a chart counts and can drill into.
fn mark_of(fact: &NewFact) -> Option<(Mark, Option<String>, Option<Day>)> {
    match &fact.what {
        What::Count(count, n) if *n > 0 => match count {
            Count::Received => Some((Mark::Received, None, None)),
            Count::Resolved => Some((Mark::Resolved, None, None)),
            Count::BecameComplaint => Some((Mark::BecameComplaint, None, None)),
            Count::Escalated => Some((Mark::Escalated, None, None)),
            Count::EscalationAnswered => Some((Mark::EscalationAnswered, None, None)),
            Count::SurveySent => Some((Mark::SurveySent, None, None)),
            Count::SurveyAnswered { score, sent_day } => {
                Some((Mark::SurveyAnswered, Some(score.to_string()), Some(*sent_day)))
            }
            _ => None,
        },
        What::RootCause(cause) => Some((Mark::RootCause, Some(cause.clone()), None)),
        _ => None,
    }
}

struct Pending {
    kind: i16,
    day: Day,
    dims: Dims,
    division: Option<String>,
    detail: Option<String>,
    sent_day: Option<Day>,
    ticket_id: uuid::Uuid,
    at_us: i64,
    position: i64,
}

/// The drill-down projection: one `stats_marks` row per counted fact.
#[derive(Clone)]
pub struct StatsMarks {
    folded: FoldCache<StatsTicket>,
    pending: Arc<Mutex<Vec<Pending>>>,
}

impl StatsMarks {
    pub const NAME: &'static str = "stats_marks";

    pub fn new(store: SharedStore) -> Self {
        Self { folded: FoldCache::new(store, FOLDED_TICKETS_MAX), pending: Arc::default() }
    }
}

impl Projection for StatsMarks {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["stats_marks"]
    }

    async fn apply(
        &self,
        _transaction: &mut Transaction<'_>,
        ticket_id: TicketId,
        event: &RecordedEvent,
        decoded: &TicketEvent,
    ) -> Result<(), sqlx::Error> {
        let mut facts = Vec::new();
        let ticket = self.folded.before(ticket_id, event).await?.step(decoded, event.occurred_at, &mut facts);
        self.folded.put(ticket_id, ticket);
        let mut pending = self.pending.lock().expect("pending marks");
        for fact in &facts {
            let Some((mark, detail, sent_day)) = mark_of(fact) else { continue };
            pending.push(Pending {
                kind: mark.code(),
                day: fact.day,
                dims: fact.dims,
                division: fact.division.clone(),
                detail,
                sent_day,
                ticket_id: ticket_id.as_uuid(),
                at_us: event.occurred_at.timestamp_micros(),
                position: event.position.0,
            });
        }
        Ok(())
    }

    fn begin_batch(&self) {
        self.pending.lock().expect("pending marks").clear();
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let rows = std::mem::take(&mut *self.pending.lock().expect("pending marks"));
        if rows.is_empty() {
            return Ok(());
        }
        match transaction {
            Transaction::Postgres(connection) => {
                sqlx::query(
                    "INSERT INTO stats_marks (day, kind, category, service_area, channel, division, detail, sent_day, \
                     ticket_id, at_us, position) \
                     SELECT * FROM UNNEST($1::integer[], $2::smallint[], $3::smallint[], $4::smallint[], \
                     $5::smallint[], $6::text[], $7::text[], $8::integer[], $9::uuid[], $10::bigint[], $11::bigint[])",
                )
                .bind(rows.iter().map(|r| r.day).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.dims.category as i16).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.dims.service_area as i16).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.dims.channel as i16).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.division.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.detail.clone()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.sent_day).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.ticket_id).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.at_us).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
                .execute(&mut **connection)
                .await?;
            }
            Transaction::Sqlite(connection) => {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO stats_marks (day, kind, category, service_area, channel, division, detail, \
                         sent_day, ticket_id, at_us, position) ",
                    );
                    insert.push_values(chunk, |mut row, mark| {
                        row.push_bind(mark.day)
                            .push_bind(mark.kind)
                            .push_bind(mark.dims.category as i16)
                            .push_bind(mark.dims.service_area as i16)
                            .push_bind(mark.dims.channel as i16)
                            .push_bind(mark.division.clone())
                            .push_bind(mark.detail.clone())
                            .push_bind(mark.sent_day)
                            .push_bind(mark.ticket_id)
                            .push_bind(mark.at_us)
                            .push_bind(mark.position);
                    });
                    insert.build().execute(&mut **connection).await?;
                }
            }
        }
        Ok(())
    }
}

/// Every mark of `kind` on the days `from..=to`, in the order the facts happened.
pub async fn marks(database: &Database, kind: Mark, from: Day, to: Day) -> Result<Vec<MarkRow>, StoreError> {
    type Raw = (i32, i16, i16, i16, Option<String>, Option<String>, Option<i32>, uuid::Uuid, i64);
    let sql = "SELECT day, category, service_area, channel, division, detail, sent_day, ticket_id, at_us \
               FROM stats_marks WHERE kind = $1 AND day >= $2 AND day <= $3 ORDER BY at_us, position";
    let rows: Vec<Raw> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as(sql).bind(kind.code()).bind(from).bind(to).fetch_all(read).await
        }
        Database::Postgres(pool) => sqlx::query_as(sql).bind(kind.code()).bind(from).bind(to).fetch_all(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(rows
        .into_iter()
        .map(|(day, category, service_area, channel, division, detail, sent_day, ticket_id, at_us)| MarkRow {
            day,
            dims: Dims {
                category: category as u8,
                service_area: service_area as u8,
                channel: channel as u8,
                division: 0,
            },
            division,
            detail,
            sent_day,
            ticket_id,
            at: DateTime::from_timestamp_micros(at_us).unwrap_or_default(),
        })
        .collect())
}
