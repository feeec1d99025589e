//! `sla_clocks`: every ticket's SLA clocks (see [`ticket_domain::sla`]), kept up to date from
//! its events, and the scheduler that records warnings and breaches when their time comes.
//!
//! The clocks use the ticket's contract as the registry holds it when the event is applied
//! (a later change of targets applies to tickets from their next event on). The scheduler
//! appends `SlaWarned`/`SlaBreached` through the workflow, which records each at most once per
//! ticket and clock: two schedulers (or instances) racing append one, never two.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use event_store::{Database, RecordedEvent, SharedStore, StoreError};
use ticket_app::registry::RegistryService;
use ticket_app::{AppError, CommandContext, TicketService};
use ticket_domain::calendar::BusinessCalendar;
use ticket_domain::registry::Registry;
use ticket_domain::sla::{SlaFacts, SlaPolicy, SlaTarget};
use ticket_domain::vocabulary::{Actor, ContractId, TicketId};

use crate::statistics::facts::REPORTING_TIME_ZONE;
use crate::statistics::query::{Period, bucket_start};
use ticket_domain::{DomainError, TicketCommand, TicketEvent};

use crate::fold::{Fold, FoldCache};
use crate::{Projection, Transaction};

const FOLDED_TICKETS_MAX: usize = 50_000;

/// Days for the statutory answer to a complaint (Act CLV of 1997 §17/A): the default.
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
    /// Calendar days for the statutory answer to a complaint; `None`: not tracked.
    statutory_days: Option<u32>,
    warn_percent: u8,
    changed: Arc<Mutex<std::collections::HashSet<TicketId>>>,
}

impl SlaClocks {
    pub fn new(store: SharedStore, registry: Arc<RegistryService>, calendar: Arc<BusinessCalendar>) -> Self {
        Self {
            folded: FoldCache::new(store, FOLDED_TICKETS_MAX),
            registry,
            calendar,
            statutory_days: Some(STATUTORY_DAYS),
            warn_percent: WARN_PERCENT,
            changed: Arc::default(),
        }
    }

    /// Warns at `percent` (1-99) of a target, unless the contract says otherwise.
    pub fn with_warn_percent(mut self, percent: u8) -> Self {
        self.warn_percent = percent.clamp(1, 99);
        self
    }

    /// Tracks the statutory answer to complaints in `days` calendar days (`None`: not at all).
    pub fn with_statutory_days(mut self, days: Option<u32>) -> Self {
        self.statutory_days = days;
        self
    }
}

fn target_name(target: SlaTarget) -> &'static str {
    match target {
        SlaTarget::FirstContact => "first_contact",
        SlaTarget::Resolution => "resolution",
        SlaTarget::StatutoryAnswer => "statutory_answer",
        SlaTarget::EscalationAnswer => "escalation_answer",
    }
}

fn parse_target(name: &str) -> Option<SlaTarget> {
    [SlaTarget::FirstContact, SlaTarget::Resolution, SlaTarget::StatutoryAnswer, SlaTarget::EscalationAnswer]
        .into_iter()
        .find(|t| target_name(*t) == name)
}

fn micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp_micros())
}

impl Projection for SlaClocks {
    fn name(&self) -> &'static str {
        "sla_clocks"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sla_clocks"]
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
        let mut rows: Vec<ClockWrite> = Vec::new();
        for ticket_id in &changed {
            let facts = self.folded.get(*ticket_id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("ticket {ticket_id} left the fold cache within its batch"))
            })?;
            let terms = facts.contract_id.as_ref().and_then(|id| registry.contracts.get(id)).map(|c| &c.terms);
            let calendar = registry.calendar_for(facts.contract_id.as_ref(), &self.calendar);
            let policy = SlaPolicy {
                terms,
                calendar: &calendar,
                statutory_days: self.statutory_days,
                warn_percent: terms.and_then(|t| t.warn_percent).unwrap_or(self.warn_percent),
                division_answer_minutes: facts
                    .division
                    .as_ref()
                    .and_then(|division| registry.divisions.get(division))
                    .and_then(|division| division.answer_minutes),
            };
            rows.extend(facts.clocks(&policy).into_iter().map(|clock| ClockWrite {
                ticket_id: ticket_id.as_uuid(),
                target: target_name(clock.target),
                warn_at: micros(clock.warn_at),
                due_at: micros(clock.due_at),
                met_at: micros(clock.met_at),
                paused: clock.paused,
                warned: facts.warned.contains(&clock.target),
                breached: facts.breached.contains(&clock.target),
            }));
        }
        let ids: Vec<uuid::Uuid> = changed.iter().map(|id| id.as_uuid()).collect();
        // The batch's tickets' clocks are replaced in a few statements, not a few per ticket.
        match transaction {
            Transaction::Postgres(connection) => {
                sqlx::query("DELETE FROM sla_clocks WHERE ticket_id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut **connection)
                    .await?;
                sqlx::query(
                    "INSERT INTO sla_clocks (ticket_id, target, warn_at_us, due_at_us, met_at_us, paused, warned, breached) \
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], \
                     $6::boolean[], $7::boolean[], $8::boolean[])",
                )
                .bind(rows.iter().map(|r| r.ticket_id).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.target).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.warn_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.due_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.met_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.paused).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.warned).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.breached).collect::<Vec<_>>())
                .execute(&mut **connection)
                .await?;
            }
            Transaction::Sqlite(connection) => {
                // 8 parameters a row, one a ticket: well under SQLite's 32,766.
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    let mut delete =
                        sqlx::QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM sla_clocks WHERE ticket_id IN (");
                    let mut list = delete.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    delete.push(")").build().execute(&mut **connection).await?;
                }
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO sla_clocks (ticket_id, target, warn_at_us, due_at_us, met_at_us, paused, warned, \
                         breached) ",
                    );
                    insert.push_values(chunk, |mut row, clock| {
                        row.push_bind(clock.ticket_id)
                            .push_bind(clock.target)
                            .push_bind(clock.warn_at)
                            .push_bind(clock.due_at)
                            .push_bind(clock.met_at)
                            .push_bind(clock.paused)
                            .push_bind(clock.warned)
                            .push_bind(clock.breached);
                    });
                    insert.build().execute(&mut **connection).await?;
                }
            }
        }
        Ok(())
    }
}

/// Rows (or tickets) per SQLite statement.
const ROWS_PER_STATEMENT: usize = 500;

/// One clock row to write.
struct ClockWrite {
    ticket_id: uuid::Uuid,
    target: &'static str,
    warn_at: Option<i64>,
    due_at: Option<i64>,
    met_at: Option<i64>,
    paused: bool,
    warned: bool,
    breached: bool,
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
                metrics::counter!("ticketd_sla_warnings_total").increment(recorded.warnings as u64);
                metrics::counter!("ticketd_sla_breaches_total").increment(recorded.breaches as u64);
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

/// How SLA compliance is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ComplianceGroup {
    Contract,
    Category,
    ServiceArea,
    Priority,
}

/// SLA compliance of one clock kind (and group) over a period. See `projections/STATISTICS.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComplianceRow {
    /// The first day of the row's period (`null`: the report is not bucketed by period).
    pub period_start: Option<chrono::NaiveDate>,
    pub target: SlaTarget,
    /// The contract, category, service area or priority (`null`: none, or not grouped).
    pub group: Option<String>,
    /// Clocks whose step was done in the period.
    pub met: i64,
    /// … of which in time.
    pub met_in_time: i64,
    /// `met_in_time / met`, to 3 decimals; `null` without any.
    pub compliance: Option<f64>,
    /// Clocks due in the period whose breach is recorded.
    pub breaches: i64,
    /// Business hours from receipt to the step, of the clocks met in the period.
    pub business_hours_median: Option<f64>,
    pub business_hours_mean: Option<f64>,
    /// The same in wall-clock hours.
    pub wall_clock_hours_median: Option<f64>,
    /// The 90th percentile of the business hours (nearest rank).
    pub business_hours_p90: Option<f64>,
    /// The clocks met, by business time from receipt to the step (a business day is 8
    /// business hours): under 1 h, 1–4 h, 4–8 h, 1–2 d, 2–5 d, over 5 d. Each band includes
    /// its lower bound.
    pub business_under_1h: i64,
    pub business_1h_to_4h: i64,
    pub business_4h_to_8h: i64,
    pub business_1d_to_2d: i64,
    pub business_2d_to_5d: i64,
    pub business_over_5d: i64,
}

/// The lower bounds (business hours) of the bands of [`ComplianceRow`].
pub const BUSINESS_BANDS: [f64; 6] = [0.0, 1.0, 4.0, 8.0, 16.0, 40.0];

/// The band (index into [`BUSINESS_BANDS`]) of a duration in business hours.
pub fn business_band(hours: f64) -> usize {
    BUSINESS_BANDS.iter().rposition(|lower| hours >= *lower).unwrap_or(0)
}

/// Only the clocks of tickets that are now (as `ticket_view` has them) of this contract,
/// category, service area or priority (API names); `None` lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComplianceFilter {
    pub contract: Option<String>,
    pub category: Option<String>,
    pub service_area: Option<String>,
    pub priority: Option<String>,
}

fn p90(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (values.len() * 9).div_ceil(10).max(1);
    Some(values[rank - 1])
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 })
}

fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

/// SLA compliance for `[from, to)`: each clock met in the period counts once (in time or not),
/// each breach due in the period counts once; with `period`, in the bucket (of days in
/// [`REPORTING_TIME_ZONE`]) its step was done in, or its breach was due in. Business hours are
/// counted in the calendar of each ticket's contract.
pub async fn compliance(
    database: &Database,
    registry: &Registry,
    calendar: &BusinessCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: Option<ComplianceGroup>,
    period: Option<Period>,
) -> Result<Vec<ComplianceRow>, StoreError> {
    compliance_filtered(database, registry, calendar, from, to, group, period, &ComplianceFilter::default()).await
}

/// One clock as an SLA report counts it: met in the period (in time or late, after how many
/// business hours), or breached with its due time in the period, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedClock {
    pub ticket_id: uuid::Uuid,
    pub target: SlaTarget,
    /// The report's group (contract, category, service area or priority), when grouped.
    pub group: Option<String>,
    /// When its step was done, if in the period.
    pub met_at: Option<DateTime<Utc>>,
    /// Met no later than due (or with no due time).
    pub in_time: bool,
    /// From receipt to the step, in the contract's business hours and on the wall clock.
    pub business_hours: Option<f64>,
    pub wall_hours: Option<f64>,
    /// Its due time, when it was breached and due in the period.
    pub breach_due: Option<DateTime<Utc>>,
}

impl CountedClock {
    /// The bucket (of days in [`REPORTING_TIME_ZONE`]) an instant falls in.
    pub fn bucket_of(at: DateTime<Utc>, period: Period) -> NaiveDate {
        bucket_start(at.with_timezone(&REPORTING_TIME_ZONE).date_naive(), period)
    }

    /// The business-time band of the met clock (see [`business_band`]).
    pub fn band(&self) -> Option<usize> {
        self.business_hours.map(business_band)
    }
}

/// Every clock an SLA report of `[from, to)` counts, filtered: what [`compliance_filtered`]
/// adds up, and what a dashboard's drill-down lists.
pub async fn counted_clocks(
    database: &Database,
    registry: &Registry,
    calendar: &BusinessCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: Option<ComplianceGroup>,
    filter: &ComplianceFilter,
) -> Result<Vec<CountedClock>, StoreError> {
    let column = match group {
        None => "NULL",
        Some(ComplianceGroup::Contract) => "v.contract_id",
        Some(ComplianceGroup::Category) => "v.category",
        Some(ComplianceGroup::ServiceArea) => "v.service_area",
        // Never null: a column with a default (migration 2005).
        Some(ComplianceGroup::Priority) => "v.priority",
    };
    // The same statement on both databases: received_at is micros on SQLite, a timestamp on
    // PostgreSQL, so it is read separately per backend below.
    let sql = |received: &str| {
        format!(
            "SELECT c.target, {column}, c.due_at_us, c.met_at_us, c.breached, {received}, v.contract_id, c.ticket_id \
             FROM sla_clocks c JOIN ticket_view v ON v.ticket_id = c.ticket_id \
             WHERE ((c.met_at_us >= $1 AND c.met_at_us < $2) OR (c.breached AND c.due_at_us >= $1 AND c.due_at_us < $2)) \
               AND ($3 IS NULL OR v.contract_id = $3) AND ($4 IS NULL OR v.category = $4) \
               AND ($5 IS NULL OR v.service_area = $5) AND ($6 IS NULL OR v.priority = $6)"
        )
    };
    type Raw = (String, Option<String>, Option<i64>, Option<i64>, bool, i64, Option<String>, uuid::Uuid);
    let (from_us, to_us) = (from.timestamp_micros(), to.timestamp_micros());
    let rows: Vec<Raw> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as(&sql("v.received_at"))
                .bind(from_us)
                .bind(to_us)
                .bind(filter.contract.as_deref())
                .bind(filter.category.as_deref())
                .bind(filter.service_area.as_deref())
                .bind(filter.priority.as_deref())
                .fetch_all(read)
                .await
        }
        Database::Postgres(pool) => {
            let sql = sql("(EXTRACT(EPOCH FROM v.received_at) * 1000000)::bigint")
                .replace("$3 IS NULL", "$3::text IS NULL")
                .replace("$4 IS NULL", "$4::text IS NULL")
                .replace("$5 IS NULL", "$5::text IS NULL")
                .replace("$6 IS NULL", "$6::text IS NULL");
            sqlx::query_as(&sql)
                .bind(from_us)
                .bind(to_us)
                .bind(filter.contract.as_deref())
                .bind(filter.category.as_deref())
                .bind(filter.service_area.as_deref())
                .bind(filter.priority.as_deref())
                .fetch_all(pool)
                .await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    // Each contract's calendar once per report, not once per row.
    let mut calendars: std::collections::HashMap<Option<String>, std::borrow::Cow<'_, BusinessCalendar>> =
        Default::default();
    let instant = |us: i64| DateTime::from_timestamp_micros(us);
    let mut counted = Vec::with_capacity(rows.len());
    for (target, group, due, met, breached, received, contract, ticket_id) in rows {
        let Some(target) = parse_target(&target) else { continue };
        let met_at = met.filter(|m| (from_us..to_us).contains(m));
        let mut clock = CountedClock {
            ticket_id,
            target,
            group,
            met_at: met_at.and_then(instant),
            in_time: met_at.is_some_and(|met_at| due.is_none_or(|due| met_at <= due)),
            business_hours: None,
            wall_hours: None,
            breach_due: due.filter(|d| breached && (from_us..to_us).contains(d)).and_then(instant),
        };
        if let (Some(start), Some(end)) = (instant(received), clock.met_at) {
            let calendar = calendars.entry(contract).or_insert_with_key(|contract| {
                let contract = contract.as_deref().and_then(|id| ContractId::parse(id).ok());
                registry.calendar_for(contract.as_ref(), calendar)
            });
            clock.business_hours = Some(calendar.elapsed(start, end).num_seconds() as f64 / 3600.0);
            clock.wall_hours = Some((end - start).num_seconds() as f64 / 3600.0);
        }
        counted.push(clock);
    }
    Ok(counted)
}

/// [`compliance`] over the clocks `filter` admits only.
#[allow(clippy::too_many_arguments)]
pub async fn compliance_filtered(
    database: &Database,
    registry: &Registry,
    calendar: &BusinessCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: Option<ComplianceGroup>,
    period: Option<Period>,
    filter: &ComplianceFilter,
) -> Result<Vec<ComplianceRow>, StoreError> {
    let clocks = counted_clocks(database, registry, calendar, from, to, group, filter).await?;
    #[derive(Default)]
    struct Acc {
        met: i64,
        in_time: i64,
        breaches: i64,
        business: Vec<f64>,
        wall: Vec<f64>,
        bands: [i64; 6],
    }
    type Key = (Option<NaiveDate>, SlaTarget, Option<String>);
    let mut groups: std::collections::BTreeMap<Key, Acc> = Default::default();
    let bucket = |at: DateTime<Utc>| period.map(|period| CountedClock::bucket_of(at, period));
    for clock in clocks {
        if let Some(met_at) = clock.met_at {
            let acc = groups.entry((bucket(met_at), clock.target, clock.group.clone())).or_default();
            acc.met += 1;
            if clock.in_time {
                acc.in_time += 1;
            }
            if let (Some(business), Some(wall)) = (clock.business_hours, clock.wall_hours) {
                acc.bands[business_band(business)] += 1;
                acc.business.push(business);
                acc.wall.push(wall);
            }
        }
        if let Some(due_at) = clock.breach_due {
            groups.entry((bucket(due_at), clock.target, clock.group)).or_default().breaches += 1;
        }
    }
    Ok(groups
        .into_iter()
        .map(|((period_start, target, group), mut acc)| ComplianceRow {
            period_start,
            target,
            group,
            met: acc.met,
            met_in_time: acc.in_time,
            compliance: (acc.met > 0).then(|| round(acc.in_time as f64 / acc.met as f64, 3)),
            breaches: acc.breaches,
            business_hours_mean: (!acc.business.is_empty())
                .then(|| round(acc.business.iter().sum::<f64>() / acc.business.len() as f64, 2)),
            business_hours_median: median(&mut acc.business).map(|m| round(m, 2)),
            wall_clock_hours_median: median(&mut acc.wall).map(|m| round(m, 2)),
            business_hours_p90: p90(&mut acc.business).map(|m| round(m, 2)),
            business_under_1h: acc.bands[0],
            business_1h_to_4h: acc.bands[1],
            business_4h_to_8h: acc.bands[2],
            business_1d_to_2d: acc.bands[3],
            business_2d_to_5d: acc.bands[4],
            business_over_5d: acc.bands[5],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_band_holds_its_lower_bound_and_a_business_day_is_eight_hours() {
        let bands: Vec<usize> = [0.0, 0.99, 1.0, 3.99, 4.0, 7.99, 8.0, 15.99, 16.0, 39.99, 40.0, 400.0]
            .into_iter()
            .map(business_band)
            .collect();
        assert_eq!(bands, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn the_90th_percentile_is_the_nearest_rank() {
        let mut ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&mut ten), Some(9.0));
        let mut eleven: Vec<f64> = (1..=11).rev().map(f64::from).collect();
        assert_eq!(p90(&mut eleven), Some(10.0));
        assert_eq!(p90(&mut []), None);
    }
}
