//! A person's rights over their data: erasure (GDPR Art. 17), the legal hold that delays it
//! (a complaint's record is kept five years after its answer: Act CLV of 1997 §17/A), the
//! restriction of processing meanwhile (Art. 18), and the retention job that erases every
//! ticket whose period has ended.
//!
//! Erasing a ticket: record `PersonalDataErased` (who, when, why — nothing personal), destroy
//! its data key (crypto-shredding: every personal part of its history now reads as erased),
//! then remove the copies: the outbox's addresses and subjects and its `.eml` files, the
//! attachments, the stored idempotency answers. The read models follow the event (the queues'
//! row is the domain's fold, whose reporter is erased from that event on).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Months, Utc};
use event_store::{Database, StoreError};
use serde::Serialize;
use ticket_app::{AppError, CommandContext, TicketRecord, TicketService};
use ticket_domain::vocabulary::{Category, Reason, TicketId};
use ticket_domain::{DomainError, Ticket, TicketCommand, TicketEvent};
use utoipa::ToSchema;

/// How long a complaint's record is kept after its answer (Act CLV of 1997 §17/A (7)).
pub const COMPLAINT_HOLD_YEARS: u32 = 5;

/// What erasure needs.
#[derive(Clone)]
pub struct Privacy {
    pub service: Arc<TicketService>,
    pub database: Database,
    pub vault: Arc<ticket_vault::Vault>,
    pub attachments: ticket_app::attachments::AttachmentStore,
    pub outbox_dir: Option<PathBuf>,
}

/// Whether the law keeps a ticket's record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Nothing keeps it: erase now.
    None,
    /// A complaint not answered yet: kept until five years after its answer.
    UntilAnswered,
    /// Kept until then.
    Until(DateTime<Utc>),
}

/// Whether the ticket is or ever was a complaint in the legal sense.
pub fn was_complaint(history: &[TicketRecord]) -> bool {
    let complaint = Some(Category::Complaint);
    history.iter().any(|record| match &record.event {
        TicketEvent::Received(e) => e.category == complaint,
        TicketEvent::Investigated(e) => e.category == Category::Complaint,
        TicketEvent::Reclassified(e) => e.category == complaint || e.previous_category == complaint,
        _ => false,
    })
}

/// When the ticket was answered: its resolution (the latest, unless reopened since), or its
/// closing as out of scope.
pub fn answered_at(history: &[TicketRecord]) -> Option<DateTime<Utc>> {
    let ticket = Ticket::replay(history.iter().map(|r| (&r.event, r.occurred_at)));
    ticket.state().and_then(|s| s.resolved_at.or(s.closed_at))
}

fn years_after(at: DateTime<Utc>, years: u32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(12 * years)).unwrap_or(at)
}

/// The hold on a ticket at `now`: a ticket that is or ever was a complaint keeps its record
/// for five years after its answer.
pub fn hold(history: &[TicketRecord], now: DateTime<Utc>) -> Hold {
    if !was_complaint(history) {
        return Hold::None;
    }
    match answered_at(history) {
        None => Hold::UntilAnswered,
        Some(answered) => {
            let until = years_after(answered, COMPLAINT_HOLD_YEARS);
            if until > now { Hold::Until(until) } else { Hold::None }
        }
    }
}

/// Why, and on whose request.
#[derive(Debug, Clone)]
pub struct Request {
    pub reason: Reason,
    pub reference: Reason,
}

/// What became of one ticket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketOutcome {
    pub ticket_id: uuid::Uuid,
    pub number: u64,
    /// `erased` (now), `already_erased`, or `restricted` (a legal hold keeps the record; its
    /// processing is restricted at once and it is erased when the hold ends).
    pub outcome: String,
    /// For `restricted`: when the hold ends (none while a complaint waits for its answer).
    pub hold_until: Option<DateTime<Utc>>,
}

fn number_of(history: &[TicketRecord]) -> u64 {
    match history.first().map(|r| &r.event) {
        Some(TicketEvent::Received(received)) => received.number.get(),
        _ => 0,
    }
}

impl Privacy {
    /// Erases the ticket's personal data now, or, under a legal hold, restricts its processing
    /// until the hold ends.
    pub async fn erase_or_restrict(
        &self,
        ticket_id: TicketId,
        request: &Request,
        context: &CommandContext,
    ) -> Result<TicketOutcome, AppError> {
        let history = self.service.history(ticket_id).await?;
        let number = number_of(&history);
        let outcome = |outcome: &str, hold_until| TicketOutcome {
            ticket_id: ticket_id.as_uuid(),
            number,
            outcome: outcome.into(),
            hold_until,
        };
        let now = self.service.clock().now();
        let hold_until = match hold(&history, now) {
            Hold::None => {
                let erased = self.erase_now(ticket_id, &history, request, context).await?;
                return Ok(outcome(if erased { "erased" } else { "already_erased" }, None));
            }
            Hold::UntilAnswered => None,
            Hold::Until(until) => Some(until),
        };
        let command = TicketCommand::RestrictProcessing {
            reason: request.reason.clone(),
            request_reference: request.reference.clone(),
            hold_until,
        };
        match self.service.execute(ticket_id, None, command, context).await {
            Ok(_) | Err(AppError::Refused(DomainError::NothingToChange(_))) => {}
            Err(e) => return Err(e),
        }
        let ticket = self.service.load(ticket_id).await?;
        if ticket.state().is_some_and(|s| s.personal_erased) {
            return Ok(outcome("already_erased", None));
        }
        Ok(outcome("restricted", hold_until))
    }

    /// Erases now, whatever the hold (the retention job, once the hold has ended). False when
    /// it was erased already.
    pub async fn erase_now(
        &self,
        ticket_id: TicketId,
        history: &[TicketRecord],
        request: &Request,
        context: &CommandContext,
    ) -> Result<bool, AppError> {
        // The files go with the data; which ones, only the history (still readable) says.
        let files: Vec<String> = history
            .iter()
            .flat_map(|record| match &record.event {
                TicketEvent::Received(e) => e.personal.attachments.clone(),
                TicketEvent::CustomerReplied(e) => e.personal.attachments.clone(),
                _ => Vec::new(),
            })
            .map(|a| a.sha256)
            .collect();
        let command = TicketCommand::ErasePersonalData {
            reason: request.reason.clone(),
            request_reference: request.reference.clone(),
        };
        // Recorded first, then done: a failure in between is finished by the next request or
        // the retention job (an erased record with a live key is erased again).
        let recorded = match self.service.execute(ticket_id, None, command, context).await {
            Ok(_) => true,
            Err(AppError::Refused(DomainError::NothingToChange(_))) => false,
            Err(e) => return Err(e),
        };
        let destroyed = self.vault.erase(ticket_id.as_uuid()).await?;
        self.remove_copies(ticket_id, &files).await?;
        tracing::info!(ticket = %ticket_id, reference = %request.reference, "personal data erased");
        Ok(recorded || destroyed)
    }

    async fn remove_copies(&self, ticket_id: TicketId, files: &[String]) -> Result<(), AppError> {
        let id = ticket_id.as_uuid().to_string();
        let store = |e: sqlx::Error| AppError::Store(StoreError::from_sqlx(e));
        let select = "SELECT id FROM mail_outbox WHERE ticket_id = $1";
        let scrub = "UPDATE mail_outbox SET recipient = NULL, subject = NULL, survey_token = NULL, \
                     last_error = CASE WHEN status = 'pending' THEN 'personal data erased' ELSE last_error END, \
                     status = CASE WHEN status = 'pending' THEN 'skipped' ELSE status END WHERE ticket_id = $1";
        let answers = "DELETE FROM idempotency_keys WHERE ticket_id = $1";
        let mails: Vec<String> = match &self.database {
            Database::Sqlite { write, .. } => {
                let mails = sqlx::query_scalar(select).bind(&id).fetch_all(write).await.map_err(store)?;
                sqlx::query(scrub).bind(&id).execute(write).await.map_err(store)?;
                sqlx::query(answers).bind(ticket_id.as_uuid()).execute(write).await.map_err(store)?;
                mails
            }
            Database::Postgres(pool) => {
                let mails = sqlx::query_scalar(select).bind(&id).fetch_all(pool).await.map_err(store)?;
                sqlx::query(scrub).bind(&id).execute(pool).await.map_err(store)?;
                sqlx::query(answers).bind(ticket_id.as_uuid()).execute(pool).await.map_err(store)?;
                mails
            }
        };
        if let Some(dir) = &self.outbox_dir {
            for mail in mails {
                match tokio::fs::remove_file(dir.join(format!("{mail}.eml"))).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AppError::Store(StoreError::Database(format!("removing a sent mail: {e}")))),
                }
            }
        }
        for file in files {
            self.attachments
                .delete(file)
                .await
                .map_err(|e| AppError::Store(StoreError::Database(format!("removing an attachment: {e}"))))?;
        }
        Ok(())
    }

    /// The retention job: erases every ticket whose period has ended — a complaint five years
    /// after its answer (or later, if `policy` keeps complaints longer), another category the
    /// days `policy` gives after it was closed (none given: kept) — and every restricted
    /// ticket whose hold has ended. Returns what it erased.
    pub async fn run_retention(
        &self,
        policy: &Retention,
        context: &CommandContext,
    ) -> Result<Vec<TicketOutcome>, AppError> {
        let now = self.service.clock().now();
        let shortest = policy.days.values().copied().min().unwrap_or(365 * COMPLAINT_HOLD_YEARS as i64);
        let before = now - chrono::Duration::days(shortest.min(365 * COMPLAINT_HOLD_YEARS as i64));
        let candidates =
            ticket_projections::queues::closed_before(&self.database, before).await.map_err(AppError::Store)?;
        let request = |rule: String| Request {
            reason: Reason::parse("the retention period ended").expect("a fixed, valid reason"),
            reference: Reason::parse(&rule).expect("a rule's name is valid text"),
        };
        let mut erased = Vec::new();
        for (id, _) in candidates {
            let ticket_id = TicketId::from_uuid(id);
            let history = self.service.history(ticket_id).await?;
            let ticket = Ticket::replay(history.iter().map(|r| (&r.event, r.occurred_at)));
            let Some(state) = ticket.state() else { continue };
            if state.personal_erased && self.vault.is_erased(id).await.map_err(AppError::Store)? {
                continue;
            }
            if hold(&history, now) != Hold::None {
                continue;
            }
            let rule = if state.restricted.is_some() || state.personal_erased {
                // Erasure was asked for (or begun) and the hold has ended.
                "a legal hold ended".to_owned()
            } else if was_complaint(&history) {
                let Some(answered) = answered_at(&history) else { continue };
                let kept = policy.days.get(&Category::Complaint).map(|d| answered + chrono::Duration::days(*d));
                if kept.is_some_and(|kept| kept > now) {
                    continue;
                }
                "retention: a complaint, five years after its answer".to_owned()
            } else {
                let Some((category, days)) = state.category.and_then(|c| policy.days.get(&c).map(|d| (c, *d))) else {
                    continue;
                };
                let Some(closed) = state.closed_at.or(state.resolved_at) else { continue };
                if closed + chrono::Duration::days(days) > now {
                    continue;
                }
                format!("retention: {} after {days} days", category_name(category))
            };
            if self.erase_now(ticket_id, &history, &request(rule), context).await? {
                erased.push(TicketOutcome {
                    ticket_id: id,
                    number: number_of(&history),
                    outcome: "erased".into(),
                    hold_until: None,
                });
            }
        }
        Ok(erased)
    }
}

fn category_name(category: Category) -> String {
    serde_json::to_value(category).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// How long each category's personal data is kept after the ticket is closed (days). A
/// complaint is kept at least five years after its answer, whatever is given here.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    pub days: std::collections::HashMap<Category, i64>,
}

impl Retention {
    /// `CATEGORY=DAYS` pairs (`bug_report=1095`).
    pub fn parse(rules: &[String]) -> Result<Self, String> {
        let mut days = std::collections::HashMap::new();
        for rule in rules {
            let (name, count) =
                rule.split_once('=').ok_or_else(|| format!("'{rule}': a retention rule is CATEGORY=DAYS"))?;
            let category: Category = serde_json::from_value(serde_json::Value::String(name.trim().to_owned()))
                .map_err(|_| format!("'{name}' is not a category (bug_report, user_support, complaint, information_request, data_change)"))?;
            let count: i64 = count
                .trim()
                .parse()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| format!("'{rule}': the days are a whole number from 1 to 36500"))?;
            days.insert(category, count);
        }
        Ok(Self { days })
    }
}

/// `ticketd migrate`: seals the personal parts that events written before sealing existed
/// hold in the clear — the one rewrite of stored events there is. Per ticket: a
/// `PersonalDataSealed` event first records each event's ledger leaf before and after (so that
/// `ticketd verify` and proof bundles accept exactly these changes), then the events' payloads
/// are replaced in one transaction, the immutability trigger lifted for it alone. Run again
/// after a crash, it finishes what is left. Returns how many events it sealed.
pub async fn seal_clear_events(
    raw: &event_store::SharedStore,
    service: &TicketService,
    database: &Database,
    vault: &ticket_vault::Vault,
) -> Result<u64, AppError> {
    let store = |e: sqlx::Error| AppError::Store(StoreError::from_sqlx(e));
    let streams: Vec<String> = match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(
            "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'ticket-%' \
             AND json_type(payload, '$.personal') = 'object'",
        )
        .fetch_all(read)
        .await
        .map_err(store)?,
        Database::Postgres(pool) => sqlx::query_scalar(
            "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'ticket-%' \
             AND jsonb_typeof(payload->'personal') = 'object'",
        )
        .fetch_all(pool)
        .await
        .map_err(store)?,
    };
    let context = CommandContext::new(ticket_domain::vocabulary::Actor::System { component: "migrate".into() });
    let mut sealed = 0;
    for name in streams {
        let stream = event_store::StreamId::parse(&name)
            .map_err(|e| AppError::Store(StoreError::InvalidInput(e.to_string())))?;
        let Some(ticket_id) = name
            .strip_prefix(TicketId::STREAM_PREFIX)
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(TicketId::from_uuid)
        else {
            continue;
        };
        let mut events = Vec::new();
        loop {
            let page = raw.read_stream(&stream, events.len() as u64, event_store::READ_EVENTS_MAX).await?;
            let done = page.len() < event_store::READ_EVENTS_MAX;
            events.extend(page);
            if done {
                break;
            }
        }
        let mut entries = Vec::new();
        let mut rewrites = Vec::new();
        for event in &events {
            let Some(payload) = vault.seal_stored(event).await? else { continue };
            let mut after = event.clone();
            after.payload = payload.clone();
            entries.push(ticket_domain::event::SealedEvent {
                position: event.position.0,
                event_id: event.event_id,
                leaf_before: ticket_ledger::hash_text(&ticket_ledger::leaf::leaf_hash(event)),
                leaf_after: ticket_ledger::hash_text(&ticket_ledger::leaf::leaf_hash(&after)),
            });
            rewrites.push((event.position.0, payload));
        }
        if rewrites.is_empty() {
            continue;
        }
        service.execute(ticket_id, None, TicketCommand::RecordSealing { events: entries }, &context).await?;
        rewrite_payloads(database, &rewrites).await.map_err(store)?;
        sealed += rewrites.len() as u64;
    }
    Ok(sealed)
}

/// Replaces stored payloads in one transaction, the immutability trigger lifted inside it only.
async fn rewrite_payloads(database: &Database, rewrites: &[(i64, event_store::Json)]) -> Result<(), sqlx::Error> {
    match database {
        Database::Sqlite { write, .. } => {
            let mut transaction = write.begin().await?;
            sqlx::query("DROP TRIGGER events_are_immutable_update").execute(&mut *transaction).await?;
            for (position, payload) in rewrites {
                sqlx::query("UPDATE events SET payload = ?1 WHERE position = ?2")
                    .bind(payload.get())
                    .bind(position)
                    .execute(&mut *transaction)
                    .await?;
            }
            sqlx::query(
                "CREATE TRIGGER events_are_immutable_update BEFORE UPDATE ON events \
                 BEGIN SELECT RAISE(ABORT, 'events are immutable'); END",
            )
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await
        }
        Database::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            sqlx::query("ALTER TABLE events DISABLE TRIGGER events_are_immutable").execute(&mut *transaction).await?;
            for (position, payload) in rewrites {
                sqlx::query("UPDATE events SET payload = $1::jsonb WHERE position = $2")
                    .bind(payload.get())
                    .bind(position)
                    .execute(&mut *transaction)
                    .await?;
            }
            sqlx::query("ALTER TABLE events ENABLE TRIGGER events_are_immutable").execute(&mut *transaction).await?;
            transaction.commit().await
        }
    }
}
