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

/// Each changed ticket's fold and when it last changed.
type Changed = std::collections::HashMap<TicketId, (Ticket, DateTime<Utc>)>;

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

    fn reset_statements(&self) -> &'static [&'static str] {
        &["DELETE FROM ticket_view"]
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
        self.folded.put(ticket_id, ticket.clone());
        self.changed.lock().expect("changed set").insert(ticket_id, (ticket, event.recorded_at));
        Ok(())
    }

    fn begin_batch(&self) {
        self.changed.lock().expect("changed set").clear();
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let changed: Vec<(TicketId, (Ticket, DateTime<Utc>))> =
            self.changed.lock().expect("changed set").drain().collect();
        for (ticket_id, (ticket, updated_at)) in changed {
            if let Some(state) = ticket.state() {
                upsert(transaction, ticket_id, ticket.version(), state, updated_at).await?;
            }
        }
        Ok(())
    }
}

async fn upsert(
    transaction: &mut Transaction<'_>,
    ticket_id: TicketId,
    version: u64,
    state: &TicketState,
    updated_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const COLUMNS: &str = "ticket_id, number, version, status, channel, category, service_area, contract_id, subject, \
                           assignee, escalated_to, out_of_scope, survey, received_at, first_contact_at, resolved_at, \
                           closed_at, updated_at";
    const UPDATE: &str = "number = excluded.number, version = excluded.version, status = excluded.status, \
                          channel = excluded.channel, category = excluded.category, service_area = excluded.service_area, \
                          contract_id = excluded.contract_id, subject = excluded.subject, assignee = excluded.assignee, \
                          escalated_to = excluded.escalated_to, out_of_scope = excluded.out_of_scope, \
                          survey = excluded.survey, received_at = excluded.received_at, \
                          first_contact_at = excluded.first_contact_at, resolved_at = excluded.resolved_at, \
                          closed_at = excluded.closed_at, updated_at = excluded.updated_at";
    let status = state.status.name();
    let channel = name(&state.channel);
    let category = state.category.as_ref().and_then(name);
    let service_area = state.service_area.as_ref().and_then(name);
    let contract_id = state.contract_id.as_ref().map(|c| c.to_string());
    let subject = state.reporter.subject.to_string();
    let assignee = state.assignee.as_ref().map(|a| a.to_string());
    let escalated_to = state.escalated_to.as_ref().map(|d| d.to_string());
    let survey = name(&state.survey);
    match transaction {
        Transaction::Sqlite(connection) => {
            let sql = format!(
                "INSERT INTO ticket_view ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                 ?15, ?16, ?17, ?18) ON CONFLICT (ticket_id) DO UPDATE SET {UPDATE}"
            );
            sqlx::query(&sql)
                .bind(ticket_id.as_uuid())
                .bind(state.number.get() as i64)
                .bind(version as i64)
                .bind(status)
                .bind(channel)
                .bind(category)
                .bind(service_area)
                .bind(contract_id)
                .bind(subject)
                .bind(assignee)
                .bind(escalated_to)
                .bind(state.out_of_scope)
                .bind(survey)
                .bind(state.received_at.timestamp_micros())
                .bind(micros(state.first_contact_at))
                .bind(micros(state.resolved_at))
                .bind(micros(state.closed_at))
                .bind(updated_at.timestamp_micros())
                .execute(&mut **connection)
                .await?;
        }
        Transaction::Postgres(connection) => {
            let sql = format!(
                "INSERT INTO ticket_view ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $18) ON CONFLICT (ticket_id) DO UPDATE SET {UPDATE}"
            );
            sqlx::query(&sql)
                .bind(ticket_id.as_uuid())
                .bind(state.number.get() as i64)
                .bind(version as i64)
                .bind(status)
                .bind(channel)
                .bind(category)
                .bind(service_area)
                .bind(contract_id)
                .bind(subject)
                .bind(assignee)
                .bind(escalated_to)
                .bind(state.out_of_scope)
                .bind(survey)
                .bind(state.received_at)
                .bind(state.first_contact_at)
                .bind(state.resolved_at)
                .bind(state.closed_at)
                .bind(updated_at)
                .execute(&mut **connection)
                .await?;
        }
    }
    Ok(())
}
