//! `ticket_view`: every ticket as it stands — what queues and lists read.
//!
//! The row is the domain's own fold (`Ticket::evolve`) of the ticket's events, so the read
//! model cannot disagree with the command side about what a status means. Recently folded
//! tickets are kept in a [`FoldCache`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_store::{RecordedEvent, SharedStore};
use ticket_domain::vocabulary::TicketId;
use ticket_domain::{Ticket, TicketEvent, TicketState};

use crate::fold::FoldCache;
use crate::{Projection, Transaction};

const FOLDED_TICKETS_MAX: usize = 50_000;
const _: () = assert!(crate::REBUILD_BATCH_MAX < FOLDED_TICKETS_MAX && crate::APPLY_BATCH_MAX < FOLDED_TICKETS_MAX);

/// Each changed ticket and when it last changed (its fold is in the cache).
type Changed = std::collections::HashMap<TicketId, DateTime<Utc>>;

#[derive(Clone)]
pub struct TicketView {
    folded: FoldCache<Ticket>,
    /// The tickets the current batch changed, written once each when the batch ends.
    changed: Arc<Mutex<Changed>>,
}

impl TicketView {
    pub fn new(store: SharedStore) -> Self {
        Self { folded: FoldCache::new(store, FOLDED_TICKETS_MAX), changed: Arc::default() }
    }
}

fn name<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned))
}

fn micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp_micros())
}

impl Projection for TicketView {
    fn name(&self) -> &'static str {
        "ticket_view"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["ticket_view"]
    }

    async fn apply(
        &self,
        transaction: &mut Transaction<'_>,
        ticket_id: TicketId,
        event: &RecordedEvent,
        decoded: &TicketEvent,
    ) -> Result<(), sqlx::Error> {
        let _ = transaction;
        let ticket = self.folded.before(ticket_id, event).await?.evolve(decoded, event.occurred_at);
        self.folded.put(ticket_id, ticket);
        self.changed.lock().expect("changed set").insert(ticket_id, event.recorded_at);
        Ok(())
    }

    fn begin_batch(&self) {
        self.changed.lock().expect("changed set").clear();
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let changed_at: Vec<(TicketId, DateTime<Utc>)> = self.changed.lock().expect("changed set").drain().collect();
        // The folds of this batch's tickets are the cache's most recent entries: a batch
        // (at most REBUILD_BATCH_MAX events) never evicts them.
        let mut changed = Vec::with_capacity(changed_at.len());
        for (ticket_id, at) in changed_at {
            let ticket = self.folded.get(ticket_id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("ticket {ticket_id} left the fold cache within its batch"))
            })?;
            changed.push((ticket_id, (ticket, at)));
        }
        match transaction {
            Transaction::Postgres(connection) => upsert_all_postgres(connection, &changed).await,
            Transaction::Sqlite(connection) => upsert_all_sqlite(connection, &changed).await,
        }
    }
}

/// Whether the ticket's processing is restricted (an erasure request under a legal hold) and
/// its personal data not erased yet: queues and searches leave it out.
fn restricted(state: &TicketState) -> bool {
    state.restricted.is_some() && !state.personal_erased
}

/// Where the reporter is reached: the e-mail address, else the phone number.
fn reporter_address(state: &TicketState) -> Option<String> {
    let reporter = &state.reporter;
    reporter.email.as_ref().map(|e| e.to_string()).or_else(|| reporter.phone.as_ref().map(|p| p.to_string()))
}

/// What a queue's text filter searches: subject, reporter name, address and phone, lower-cased
/// here (SQLite's `lower()` knows only ASCII, and names are Hungarian).
pub fn search_text(state: &TicketState) -> String {
    let reporter = &state.reporter;
    let mut text = format!("{}\n{}", reporter.subject, reporter.name);
    for extra in [
        reporter.email.as_ref().map(|e| e.to_string()),
        reporter.reply_to.as_ref().map(|e| e.to_string()),
        reporter.phone.as_ref().map(|p| p.to_string()),
    ]
    .into_iter()
    .flatten()
    {
        text.push('\n');
        text.push_str(&extra);
    }
    text.to_lowercase()
}

/// A row to write: the ticket, its version, its state, when it last changed.
type Row<'a> = (TicketId, u64, &'a TicketState, DateTime<Utc>);

/// PostgreSQL: the whole batch's rows in one statement.
async fn upsert_all_postgres(
    connection: &mut sqlx::PgConnection,
    changed: &[(TicketId, (Ticket, DateTime<Utc>))],
) -> Result<(), sqlx::Error> {
    let rows: Vec<Row> = changed
        .iter()
        .filter_map(|(id, (ticket, at))| ticket.state().map(|state| (*id, ticket.version(), state, *at)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: &dyn Fn(&Row) -> Option<String>| -> Vec<Option<String>> { rows.iter().map(f).collect() };
    let instants = |f: &dyn Fn(&TicketState) -> Option<DateTime<Utc>>| -> Vec<Option<DateTime<Utc>>> {
        rows.iter().map(|r| f(r.2)).collect()
    };
    sqlx::query(
        "INSERT INTO ticket_view (ticket_id, number, version, status, channel, category, service_area, contract_id, \
         subject, assignee, escalated_to, out_of_scope, survey, received_at, first_contact_at, resolved_at, closed_at, \
         updated_at, priority, reporter_name, reporter_address, search_text, restricted) \
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::text[], $11::text[], $12::boolean[], $13::text[], $14::timestamptz[], \
         $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], $19::text[], $20::text[], \
         $21::text[], $22::text[], $23::boolean[]) \
         ON CONFLICT (ticket_id) DO UPDATE SET number = excluded.number, version = excluded.version, \
         status = excluded.status, channel = excluded.channel, category = excluded.category, \
         service_area = excluded.service_area, contract_id = excluded.contract_id, subject = excluded.subject, \
         assignee = excluded.assignee, escalated_to = excluded.escalated_to, out_of_scope = excluded.out_of_scope, \
         survey = excluded.survey, received_at = excluded.received_at, first_contact_at = excluded.first_contact_at, \
         resolved_at = excluded.resolved_at, closed_at = excluded.closed_at, updated_at = excluded.updated_at, \
         priority = excluded.priority, reporter_name = excluded.reporter_name, \
         reporter_address = excluded.reporter_address, search_text = excluded.search_text, \
         restricted = excluded.restricted",
    )
    .bind(rows.iter().map(|r| r.0.as_uuid()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.number.get() as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.1 as i64).collect::<Vec<_>>())
    .bind(column(&|r| Some(r.2.status.name().to_owned())))
    .bind(column(&|r| name(&r.2.channel)))
    .bind(column(&|r| r.2.category.as_ref().and_then(name)))
    .bind(column(&|r| r.2.service_area.as_ref().and_then(name)))
    .bind(column(&|r| r.2.contract_id.as_ref().map(|c| c.to_string())))
    .bind(column(&|r| Some(r.2.reporter.subject.to_string())))
    .bind(column(&|r| r.2.assignee.as_ref().map(|a| a.to_string())))
    .bind(column(&|r| r.2.escalated_to.as_ref().map(|d| d.to_string())))
    .bind(rows.iter().map(|r| r.2.out_of_scope).collect::<Vec<_>>())
    .bind(column(&|r| name(&r.2.survey)))
    .bind(instants(&|s| Some(s.received_at)))
    .bind(instants(&|s| s.first_contact_at))
    .bind(instants(&|s| s.resolved_at))
    .bind(instants(&|s| s.closed_at))
    .bind(rows.iter().map(|r| r.3).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.2.priority.name()).collect::<Vec<_>>())
    .bind(column(&|r| Some(r.2.reporter.name.to_string())))
    .bind(column(&|r| reporter_address(r.2)))
    .bind(column(&|r| Some(search_text(r.2))))
    .bind(rows.iter().map(|r| restricted(r.2)).collect::<Vec<_>>())
    .execute(connection)
    .await?;
    Ok(())
}

/// SQLite: many rows per statement (each statement is a round trip to sqlx's SQLite thread).
async fn upsert_all_sqlite(
    connection: &mut sqlx::SqliteConnection,
    changed: &[(TicketId, (Ticket, DateTime<Utc>))],
) -> Result<(), sqlx::Error> {
    /// 23 parameters a row: well under SQLite's 32,766.
    const ROWS_PER_STATEMENT: usize = 500;
    let rows: Vec<Row> = changed
        .iter()
        .filter_map(|(id, (ticket, at))| ticket.state().map(|state| (*id, ticket.version(), state, *at)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO ticket_view (ticket_id, number, version, status, channel, category, service_area, \
             contract_id, subject, assignee, escalated_to, out_of_scope, survey, received_at, first_contact_at, \
             resolved_at, closed_at, updated_at, priority, reporter_name, reporter_address, search_text, restricted) ",
        );
        insert.push_values(chunk, |mut row, (ticket_id, version, state, updated_at)| {
            row.push_bind(ticket_id.as_uuid())
                .push_bind(state.number.get() as i64)
                .push_bind(*version as i64)
                .push_bind(state.status.name())
                .push_bind(name(&state.channel))
                .push_bind(state.category.as_ref().and_then(name))
                .push_bind(state.service_area.as_ref().and_then(name))
                .push_bind(state.contract_id.as_ref().map(|c| c.to_string()))
                .push_bind(state.reporter.subject.to_string())
                .push_bind(state.assignee.as_ref().map(|a| a.to_string()))
                .push_bind(state.escalated_to.as_ref().map(|d| d.to_string()))
                .push_bind(state.out_of_scope)
                .push_bind(name(&state.survey))
                .push_bind(state.received_at.timestamp_micros())
                .push_bind(micros(state.first_contact_at))
                .push_bind(micros(state.resolved_at))
                .push_bind(micros(state.closed_at))
                .push_bind(updated_at.timestamp_micros())
                .push_bind(state.priority.name())
                .push_bind(state.reporter.name.to_string())
                .push_bind(reporter_address(state))
                .push_bind(search_text(state))
                .push_bind(restricted(state));
        });
        insert.push(
            " ON CONFLICT (ticket_id) DO UPDATE SET number = excluded.number, version = excluded.version, \
             status = excluded.status, channel = excluded.channel, category = excluded.category, \
             service_area = excluded.service_area, contract_id = excluded.contract_id, subject = excluded.subject, \
             assignee = excluded.assignee, escalated_to = excluded.escalated_to, \
             out_of_scope = excluded.out_of_scope, survey = excluded.survey, received_at = excluded.received_at, \
             first_contact_at = excluded.first_contact_at, resolved_at = excluded.resolved_at, \
             closed_at = excluded.closed_at, updated_at = excluded.updated_at, priority = excluded.priority, \
             reporter_name = excluded.reporter_name, reporter_address = excluded.reporter_address, \
             search_text = excluded.search_text, restricted = excluded.restricted",
        );
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}
