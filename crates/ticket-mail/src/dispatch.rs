//! The dispatcher: takes due outbox rows, renders and sends each, and records the follow-up
//! command with the mail's Message-ID. A row is leased while worked on, so several instances
//! can run dispatchers without sending a mail twice; a failed delivery is retried with
//! exponential backoff, for ever (a `failed` row is one the server refused for good).
//!
//! A mail can go out twice only if the process dies between the server's acceptance and the
//! row's update (a window of one local write); it then goes out again with the same
//! Message-ID, which receiving systems use to drop the copy.

use std::sync::Arc;
use std::time::Duration;

use event_store::Database;
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use ticket_app::{AppError, CommandContext, TicketService};
use ticket_domain::vocabulary::{Actor, ComplaintOutcome, Language, MessageId, TicketId};
use ticket_domain::{SurveyStatus, Ticket, TicketCommand, TicketEvent};
use tokio_util::sync::CancellationToken;

use crate::outbox::{self, OutboxRow, RowChange, now_us};
use crate::templates::{MailKind, MailValues, Templates, language_code};
use crate::transport::{SendError, Transport};

/// What the dispatcher needs to know.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The sender of every mail (`Name <address>`).
    pub from: Mailbox,
    /// Where new-ticket notifications go; none: not sent.
    pub agents: Option<Mailbox>,
    /// The language of the agents' notifications.
    pub agents_language: Language,
    /// The service's public address, for links in mails (`https://support.example.com`).
    pub public_url: String,
    /// The first retry waits this long; each later one twice as long, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often the outbox is looked at.
    pub poll: Duration,
}

impl MailConfig {
    /// The right-hand side of our Message-IDs: the sender's domain.
    pub fn domain(&self) -> String {
        self.from.email.domain().to_owned()
    }
}

/// How long a dispatcher owns a row it took: longer than a row's work may take
/// ([`SEND_MAX`]), so a row whose claim has run out is no longer being worked on (by a live
/// dispatcher, or one that crashed: its rows are taken up again this long after).
const LEASE: Duration = Duration::from_secs(30);
/// The longest one row's work (render, send, record) may take before it is left for later.
const SEND_MAX: Duration = Duration::from_secs(20);
const ROWS_PER_ROUND: i64 = 20;

pub struct Dispatcher {
    pub service: Arc<TicketService>,
    /// Where divisions' addresses come from.
    pub registry: Arc<ticket_app::registry::RegistryService>,
    pub database: Database,
    pub transport: Transport,
    pub templates: Arc<Templates>,
    pub config: MailConfig,
}

/// What became of one row.
enum Outcome {
    Sent { recipient: String, subject: String, follow_up: Option<TicketCommand> },
    Skipped(String),
}

impl Dispatcher {
    /// Sends until `shutdown`.
    /// With `fence` (the job's lease, on PostgreSQL), each claim of a row checks the lease in
    /// its own transaction: a dispatcher that lost its lease claims nothing more.
    pub async fn run(&self, shutdown: CancellationToken, fence: Option<event_store::lease::Fence>) {
        tracing::info!(transport = %self.transport.describe(), "mail dispatcher started");
        loop {
            let busy = match self.round(fence.as_ref(), &shutdown).await {
                Ok(worked) => worked,
                Err(error) => {
                    tracing::warn!(%error, "the outbox cannot be read; trying again");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Works on the rows due now (stopping between two when `stop` fires); true when there
    /// were some. Each row is claimed as of its own moment, and its send is bounded by
    /// [`SEND_MAX`]: a row whose claim ([`LEASE`]) ran out is never still being worked on.
    pub async fn round(
        &self,
        fence: Option<&event_store::lease::Fence>,
        stop: &CancellationToken,
    ) -> Result<bool, event_store::StoreError> {
        let rows = outbox::due(&self.database, now_us(), ROWS_PER_ROUND).await?;
        for row in &rows {
            if stop.is_cancelled() {
                break;
            }
            if outbox::claim(&self.database, &row.id, now_us(), LEASE.as_micros() as i64, fence).await? {
                match tokio::time::timeout(SEND_MAX, self.work(row)).await {
                    Ok(worked) => worked?,
                    // Left claimed: tried again when its claim runs out (as after a crash).
                    Err(_) => tracing::warn!(mail = %row.id, "a mail took longer than {SEND_MAX:?}; tried again later"),
                }
            }
        }
        Ok(!rows.is_empty())
    }

    async fn work(&self, row: &OutboxRow) -> Result<(), event_store::StoreError> {
        if row.status == "sent" {
            return self.follow_up_again(row).await;
        }
        match self.deliver(row).await {
            Ok(Outcome::Sent { recipient, subject, follow_up }) => {
                outbox::record(&self.database, &row.id, RowChange::Sent { recipient: &recipient, subject: &subject })
                    .await?;
                tracing::info!(kind = %row.kind, ticket = %row.ticket_id, mail = %row.id, "mail sent");
                self.follow_up(row, follow_up).await
            }
            Ok(Outcome::Skipped(reason)) => {
                tracing::info!(kind = %row.kind, ticket = %row.ticket_id, %reason, "mail not needed");
                outbox::record(&self.database, &row.id, RowChange::Finished { status: "skipped", reason: &reason })
                    .await
            }
            Err(SendError::Permanent(reason)) => {
                tracing::error!(kind = %row.kind, ticket = %row.ticket_id, %reason, "mail refused for good");
                outbox::record(&self.database, &row.id, RowChange::Finished { status: "failed", reason: &reason }).await
            }
            Err(SendError::Transient(reason)) => {
                let wait = self.backoff(row.attempts + 1);
                tracing::warn!(kind = %row.kind, ticket = %row.ticket_id, %reason, retry_in_ms = wait.as_millis() as u64, "mail not sent yet");
                let next_attempt_us = now_us() + wait.as_micros() as i64;
                outbox::record(
                    &self.database,
                    &row.id,
                    RowChange::Retry { error: &reason, next_attempt_us, attempted: true },
                )
                .await
            }
        }
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = attempts.clamp(1, 20) as u32 - 1;
        self.config.retry_base.saturating_mul(2u32.saturating_pow(exponent)).min(self.config.retry_max)
    }

    /// Renders and sends one row's mail.
    async fn deliver(&self, row: &OutboxRow) -> Result<Outcome, SendError> {
        let Some(kind) = MailKind::parse(&row.kind) else {
            return Err(SendError::Permanent(format!("'{}' is not a kind of mail this version sends", row.kind)));
        };
        let ticket_id = parse_ticket_id(&row.ticket_id).map_err(SendError::Permanent)?;
        let history = self.service.history(ticket_id).await.map_err(|e| match e {
            AppError::NotFound(_) => SendError::Permanent(format!("ticket {ticket_id} does not exist")),
            other => SendError::Transient(other.to_string()),
        })?;
        let ticket = Ticket::replay(history.iter().map(|r| (&r.event, r.occurred_at)));
        let Some(state) = ticket.state() else {
            return Err(SendError::Permanent(format!("ticket {ticket_id} has no Received event")));
        };
        let the_event = history.iter().find(|r| r.version as i64 == row.ticket_version).map(|r| &r.event);
        let mut values = MailValues {
            number: state.number.get(),
            name: state.reporter.name.to_string(),
            email: state.reporter.email.as_ref().map(ToString::to_string).unwrap_or_default(),
            subject: state.reporter.subject.to_string(),
            message: state.reporter.message.to_string(),
            channel: serde_json::to_value(state.channel)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            ..MailValues::default()
        };
        // Who gets it, in what language, and who gets a copy.
        let mut copy = None;
        let (recipient, language) =
            if let (MailKind::Escalation, Some(TicketEvent::Escalated(escalated))) = (kind, the_event) {
                let registry = self.registry.current().await.map_err(|e| SendError::Transient(e.to_string()))?;
                let Some(division) = registry.divisions.get(&escalated.division) else {
                    return Ok(Outcome::Skipped(format!("division '{}' is not in the registry", escalated.division)));
                };
                values.division = division.name.clone();
                values.body = escalated.reason.to_string();
                values.assignee = state.assignee.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into());
                let address = division
                    .notification_email
                    .as_str()
                    .parse()
                    .map_err(|e| SendError::Permanent(format!("the division's address cannot be mailed: {e}")))?;
                (Mailbox::new(Some(division.name.clone()), address), Language::Hu)
            } else if kind == MailKind::SlaBreach {
                // The agents' address, with a copy to the assignee when the staff directory has theirs.
                let registry = self.registry.current().await.map_err(|e| SendError::Transient(e.to_string()))?;
                let assignee = state.assignee.as_ref().and_then(|name| {
                    let address = registry.staff.get(name)?.email.as_str().parse().ok()?;
                    Some(Mailbox::new(Some(name.to_string()), address))
                });
                match (&self.config.agents, assignee) {
                    (Some(agents), assignee) => {
                        copy = assignee;
                        (agents.clone(), self.config.agents_language)
                    }
                    (None, Some(assignee)) => (assignee, self.config.agents_language),
                    (None, None) => {
                        return Ok(Outcome::Skipped(
                            "no agents' address is configured and the assignee has none in the staff directory".into(),
                        ));
                    }
                }
            } else if kind == MailKind::AgentNotification {
                match &self.config.agents {
                    Some(agents) => (agents.clone(), self.config.agents_language),
                    None => return Ok(Outcome::Skipped("no agents' address is configured".into())),
                }
            } else {
                // The address the reporter asked answers to go to (`Reply-To:`), else theirs.
                let Some(email) = state.reporter.reply_to.as_ref().or(state.reporter.email.as_ref()) else {
                    return Ok(Outcome::Skipped("the reporter gave no e-mail address".into()));
                };
                let address = email.as_str().parse().map_err(|e| {
                    SendError::Permanent(format!("the reporter's address '{email}' cannot be mailed: {e}"))
                })?;
                (Mailbox::new(Some(state.reporter.name.to_string()), address), state.language)
            };
        match (kind, the_event) {
            (MailKind::Reply, Some(TicketEvent::AgentReplied(replied))) => {
                values.body = replied.personal.body.to_string()
            }
            (MailKind::Resolution, Some(TicketEvent::Resolved(resolved))) => {
                values.resolution = resolved.personal.resolution.to_string();
                values.reasons =
                    resolved.personal.rejection_reasons.as_ref().map(ToString::to_string).unwrap_or_default();
                values.outcome = match (resolved.complaint_outcome, language) {
                    (ComplaintOutcome::Upheld, _) => String::new(),
                    (ComplaintOutcome::PartlyUpheld, Language::Hu) => "részben elutasítottuk".into(),
                    (ComplaintOutcome::Rejected, Language::Hu) => "elutasítottuk".into(),
                    (ComplaintOutcome::PartlyUpheld, Language::En) => "partly upheld and partly rejected".into(),
                    (ComplaintOutcome::Rejected, Language::En) => "rejected".into(),
                };
            }
            (MailKind::Survey, _) => {
                if state.out_of_scope || state.survey != SurveyStatus::NotSent {
                    return Ok(Outcome::Skipped("the survey was already sent or does not apply".into()));
                }
                let Some(token) = &row.survey_token else {
                    return Err(SendError::Permanent("the survey link's secret is missing".into()));
                };
                values.survey_url = format!("{}/survey/{token}", self.config.public_url.trim_end_matches('/'));
            }
            (MailKind::SlaBreach, Some(TicketEvent::SlaBreached(breached))) => {
                values.target = serde_json::to_value(breached.target)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                values.due =
                    breached.due_at.with_timezone(&chrono_tz::Europe::Budapest).format("%Y-%m-%d %H:%M %Z").to_string();
                values.assignee = state.assignee.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into());
            }
            (MailKind::Escalation, Some(TicketEvent::Escalated(_))) => {}
            (
                MailKind::Reply
                | MailKind::Resolution
                | MailKind::SlaBreach
                | MailKind::Escalation
                | MailKind::ComplaintRejected,
                _,
            ) => {
                return Err(SendError::Permanent(format!(
                    "event version {} of ticket {ticket_id} is not what a {} mail needs",
                    row.ticket_version, row.kind
                )));
            }
            (MailKind::Confirmation | MailKind::AgentNotification, _) => {}
        }
        // A complaint rejected (whole or in part) is answered with the reasons and the redress.
        let template = match the_event {
            Some(TicketEvent::Resolved(resolved)) if resolved.complaint_outcome != ComplaintOutcome::Upheld => {
                MailKind::ComplaintRejected
            }
            _ => kind,
        };
        let rendered = self
            .templates
            .render(language, template, &values)
            .map_err(|e| SendError::Transient(format!("the template does not render: {e}")))?;
        let subject = format!("[#{}] {}", state.number, rendered.subject);
        let root =
            outbox::thread_root(&self.database, ticket_id).await.map_err(|e| SendError::Transient(e.to_string()))?;
        let message = self
            .message(row, kind, language, &recipient, copy.as_ref(), &subject, rendered.body, root)
            .map_err(SendError::Permanent)?;
        self.transport.send(&message, &row.id).await?;
        let message_id = MessageId::parse(&row.message_id).ok();
        let follow_up = match kind {
            MailKind::Confirmation => Some(TicketCommand::Acknowledge { message_id }),
            MailKind::Survey => Some(TicketCommand::RecordSurveySent { message_id }),
            _ => None,
        };
        // The outbox lists who got it, the copy included.
        let recipient = match &copy {
            Some(copy) => format!("{}, cc {}", recipient.email, copy.email),
            None => recipient.email.to_string(),
        };
        Ok(Outcome::Sent { recipient, subject, follow_up })
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        row: &OutboxRow,
        kind: MailKind,
        language: Language,
        to: &Mailbox,
        copy: Option<&Mailbox>,
        subject: &str,
        body: String,
        root: Option<String>,
    ) -> Result<Message, String> {
        let header =
            |name: &'static str, value: &str| HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned());
        let mut builder = Message::builder()
            .message_id(Some(row.message_id.clone()))
            .from(self.config.from.clone())
            .to(to.clone())
            .subject(subject)
            // The service's one clock, as every time it records.
            .date(std::time::SystemTime::from(self.service.clock().now()))
            .raw_header(header("Content-Language", language_code(language)));
        if let Some(copy) = copy {
            builder = builder.cc(copy.clone());
        }
        if let Some(root) = root.filter(|root| *root != row.message_id) {
            builder = builder.in_reply_to(root.clone()).references(root);
        }
        if kind.is_automatic() {
            builder = builder.raw_header(header("Auto-Submitted", "auto-generated"));
        }
        builder
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body))
            .map_err(|e| format!("the mail cannot be built: {e}"))
    }

    /// Records what a sent mail implies (the ticket is acknowledged, the survey went out).
    async fn follow_up(&self, row: &OutboxRow, command: Option<TicketCommand>) -> Result<(), event_store::StoreError> {
        if let Some(command) = command {
            let ticket_id = match parse_ticket_id(&row.ticket_id) {
                Ok(id) => id,
                Err(reason) => {
                    return outbox::record(
                        &self.database,
                        &row.id,
                        RowChange::Finished { status: "failed", reason: &reason },
                    )
                    .await;
                }
            };
            let mut context = CommandContext::new(Actor::System { component: "mailer".into() });
            context.causation_id = uuid::Uuid::parse_str(&row.event_id).ok();
            match self.service.execute(ticket_id, None, command, &context).await {
                // Refused: an agent got there first (acknowledged by hand, reopened, …).
                Ok(_) | Err(AppError::Refused(_)) => {}
                Err(error) => {
                    let wait = self.backoff(row.attempts + 1);
                    tracing::warn!(ticket = %row.ticket_id, %error, "the mail went out; recording it waits for a retry");
                    return outbox::record(
                        &self.database,
                        &row.id,
                        RowChange::Retry {
                            error: &format!("sent; recording the follow-up failed: {error}"),
                            next_attempt_us: now_us() + wait.as_micros() as i64,
                            attempted: false,
                        },
                    )
                    .await;
                }
            }
        }
        outbox::record(&self.database, &row.id, RowChange::Done).await
    }

    /// A row sent earlier whose follow-up did not get recorded: record it now, without
    /// sending again.
    async fn follow_up_again(&self, row: &OutboxRow) -> Result<(), event_store::StoreError> {
        let message_id = MessageId::parse(&row.message_id).ok();
        let command = match MailKind::parse(&row.kind) {
            Some(MailKind::Confirmation) => Some(TicketCommand::Acknowledge { message_id }),
            Some(MailKind::Survey) => Some(TicketCommand::RecordSurveySent { message_id }),
            _ => None,
        };
        self.follow_up(row, command).await
    }
}

fn parse_ticket_id(id: &str) -> Result<TicketId, String> {
    uuid::Uuid::parse_str(id).map(TicketId::from_uuid).map_err(|e| format!("'{id}' is not a ticket id: {e}"))
}
