//! `sla_clocks`: every ticket's SLA clocks (see [`ticket_domain::sla`]), kept up to date from
//! its events, and the scheduler that records warnings and breaches when their time comes.
//!
//! The clocks use the ticket's contract as the registry holds it when the event is applied
//! (a later change of targets applies to tickets from their next event on). The scheduler
//! appends `SlaWarned`/`SlaBreached` through the workflow, which records each at most once per
//! ticket and clock: two schedulers (or instances) racing append one, never two.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_store::{Database, RecordedEvent, SharedStore, StoreError};
use ticket_app::registry::RegistryService;
use ticket_app::{AppError, CommandContext, TicketService};
use ticket_domain::calendar::BusinessCalendar;
use ticket_domain::sla::{SlaFacts, SlaPolicy, SlaTarget};
use ticket_domain::vocabulary::{Actor, TicketId};
use ticket_domain::{DomainError, TicketCommand, TicketEvent};

use crate::fold::{Fold, FoldCache};
use crate::{Projection, Transaction};

const FOLDED_TICKETS_MAX: usize = 50_000;

/// Days for the statutory answer to a complaint (Act CLV of 1997 §17/A).
pub const STATUTORY_DAYS: u32 = 30;
/// A clock warns when this share of it is used.
pub const WARN_PERCENT: u8 = 80;

impl Fold for SlaFacts {
    fn version(&self) -> u64 {
        self.version
    }
    fn evolve(self, event: &TicketEvent, at: DateTime<Utc>) -> Self {
        SlaFacts::evolve(self, event, at)
    }
}

#[derive(Clone)]
pub struct SlaClocks {
    folded: FoldCache<SlaFacts>,
    registry: Arc<RegistryService>,
    calendar: Arc<BusinessCalendar>,
    changed: Arc<Mutex<std::collections::HashSet<TicketId>>>,
}

impl SlaClocks {
    pub fn new(store: SharedStore, registry: Arc<RegistryService>, calendar: Arc<BusinessCalendar>) -> Self {
        Self { folded: FoldCache::new(store, FOLDED_TICKETS_MAX), registry, calendar, changed: Arc::default() }
    }
}

fn target_name(target: SlaTarget) -> &'static str {
    match target {
        SlaTarget::FirstContact => "first_contact",
        SlaTarget::Resolution => "resolution",
        SlaTarget::StatutoryAnswer => "statutory_answer",
    }
}

fn parse_target(name: &str) -> Option<SlaTarget> {
    [SlaTarget::FirstContact, SlaTarget::Resolution, SlaTarget::StatutoryAnswer]
        .into_iter()
        .find(|t| target_name(*t) == name)
}

fn micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp_micros())
}

macro_rules! on_transaction {
    ($transaction:expr, |$connection:ident| $body:expr) => {
        match $transaction {
            Transaction::Sqlite(connection) => {
                let $connection = &mut **connection;
                $body
            }
            Transaction::Postgres(connection) => {
                let $connection = &mut **connection;
                $body
            }
        }
    };
}

impl Projection for SlaClocks {
    fn name(&self) -> &'static str {
        "sla_clocks"
    }

    fn reset_statements(&self) -> &'static [&'static str] {
        &["DELETE FROM sla_clocks"]
    }

    async fn apply(
        &self,
        _transaction: &mut Transaction<'_>,
        ticket_id: TicketId,
        event: &RecordedEvent,
        decoded: &TicketEvent,
    ) -> Result<(), sqlx::Error> {
        let facts = self.folded.before(ticket_id, event).await?.evolve(decoded, event.occurred_at);
        self.folded.put(ticket_id, facts);
        self.changed.lock().map_err(|_| sqlx::Error::Protocol("the changed set is poisoned".into()))?.insert(ticket_id);
        Ok(())
    }

    fn begin_batch(&self) {
        if let Ok(mut changed) = self.changed.lock() {
            changed.clear();
        }
    }

    async fn finish_batch(&self, transaction: &mut Transaction<'_>) -> Result<(), sqlx::Error> {
        let changed: Vec<TicketId> = match self.changed.lock() {
            Ok(mut changed) => changed.drain().collect(),
            Err(_) => return Err(sqlx::Error::Protocol("the changed set is poisoned".into())),
        };
        if changed.is_empty() {
            return Ok(());
        }
        let registry =
            self.registry.current().await.map_err(|e| sqlx::Error::Protocol(format!("the registry: {e}")))?;
        for ticket_id in changed {
            let facts = self.folded.get(ticket_id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("ticket {ticket_id} left the fold cache within its batch"))
            })?;
            let terms = facts.contract_id.as_ref().and_then(|id| registry.contracts.get(id)).map(|c| &c.terms);
            let policy = SlaPolicy {
                terms,
                calendar: &self.calendar,
                statutory_days: Some(STATUTORY_DAYS),
                warn_percent: WARN_PERCENT,
            };
            let clocks = facts.clocks(&policy);
            let id = ticket_id.as_uuid();
            on_transaction!(transaction, |connection| {
                sqlx::query("DELETE FROM sla_clocks WHERE ticket_id = $1").bind(&id).execute(&mut *connection).await?;
                for clock in &clocks {
                    sqlx::query(
                        "INSERT INTO sla_clocks (ticket_id, target, warn_at_us, due_at_us, met_at_us, paused, warned, \
                         breached) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(target_name(clock.target))
                    .bind(micros(clock.warn_at))
                    .bind(micros(clock.due_at))
                    .bind(micros(clock.met_at))
                    .bind(clock.paused)
                    .bind(facts.warned.contains(&clock.target))
                    .bind(facts.breached.contains(&clock.target))
                    .execute(&mut *connection)
                    .await?;
                }
                Ok::<(), sqlx::Error>(())
            })?;
        }
        Ok(())
    }
}

/// A ticket's clocks as the read model holds them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClockRow {
    pub ticket_id: TicketId,
    pub target: SlaTarget,
    pub warn_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub met_at: Option<DateTime<Utc>>,
    pub paused: bool,
    pub warned: bool,
    pub breached: bool,
}

type RawRow = (uuid::Uuid, String, Option<i64>, Option<i64>, Option<i64>, bool, bool, bool);

fn row(raw: RawRow) -> Option<ClockRow> {
    let instant = |us: Option<i64>| us.and_then(DateTime::from_timestamp_micros);
    Some(ClockRow {
        ticket_id: TicketId::from_uuid(raw.0),
        target: parse_target(&raw.1)?,
        warn_at: instant(raw.2),
        due_at: instant(raw.3),
        met_at: instant(raw.4),
        paused: raw.5,
        warned: raw.6,
        breached: raw.7,
    })
}

const COLUMNS: &str = "ticket_id, target, warn_at_us, due_at_us, met_at_us, paused, warned, breached";

/// One ticket's clocks.
pub async fn clocks_of(database: &Database, ticket_id: TicketId) -> Result<Vec<ClockRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sla_clocks WHERE ticket_id = $1 ORDER BY target");
    let id = ticket_id.as_uuid();
    let rows: Vec<RawRow> = match database {
        Database::Sqlite { read, .. } => sqlx::query_as(&sql).bind(&id).fetch_all(read).await,
        Database::Postgres(pool) => sqlx::query_as(&sql).bind(&id).fetch_all(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(rows.into_iter().filter_map(row).collect())
}

/// Running clocks whose warning or breach is due at `now` and not yet recorded.
async fn due_clocks(database: &Database, now: DateTime<Utc>) -> Result<Vec<ClockRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sla_clocks WHERE met_at_us IS NULL AND \
         ((warned = false AND warn_at_us <= $1) OR (breached = false AND due_at_us <= $1)) \
         ORDER BY due_at_us LIMIT 500"
    );
    let now = now.timestamp_micros();
    let rows: Vec<RawRow> = match database {
        Database::Sqlite { read, .. } => sqlx::query_as(&sql).bind(now).fetch_all(read).await,
        Database::Postgres(pool) => sqlx::query_as(&sql).bind(now).fetch_all(pool).await,
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(rows.into_iter().filter_map(row).collect())
}

/// What one scheduler round recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub warnings: usize,
    pub breaches: usize,
}

/// Records the warnings and breaches whose time has come (by the service's clock). Each is
/// recorded once: the workflow refuses a second (another scheduler got there first).
pub async fn record_due(service: &TicketService, database: &Database) -> Result<Recorded, AppError> {
    let now = service.clock().now();
    let mut recorded = Recorded::default();
    let context = CommandContext::new(Actor::System { component: "sla-scheduler".into() });
    for clock in due_clocks(database, now).await? {
        let Some(due_at) = clock.due_at else { continue };
        let mut commands = Vec::new();
        if !clock.warned && clock.warn_at.is_some_and(|warn| warn <= now) {
            commands.push(TicketCommand::RecordSlaWarning { target: clock.target, due_at });
        }
        if !clock.breached && due_at <= now {
            commands.push(TicketCommand::RecordSlaBreach { target: clock.target, due_at });
        }
        for command in commands {
            let breach = matches!(command, TicketCommand::RecordSlaBreach { .. });
            match service.execute(clock.ticket_id, None, command, &context).await {
                Ok(_) if breach => recorded.breaches += 1,
                Ok(_) => recorded.warnings += 1,
                Err(AppError::Refused(DomainError::NothingToChange(_))) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(recorded)
}

/// Runs [`record_due`] every `every` until `shutdown`.
pub async fn run_scheduler(
    service: Arc<TicketService>,
    database: Database,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match record_due(&service, &database).await {
            Ok(recorded) if recorded != Recorded::default() => {
                tracing::info!(warnings = recorded.warnings, breaches = recorded.breaches, "SLA events recorded")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the SLA scheduler failed a round; trying again"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
