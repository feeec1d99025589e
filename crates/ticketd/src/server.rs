//! `ticketd serve`: the HTTP service, its projections, and a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use event_store::OpenedStore;
use ticket_app::{ServiceOptions, TicketService};
use tokio_util::sync::CancellationToken;

use crate::http::{self, AppState};

pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The time to live of a background job's lease (PostgreSQL: one leader per job).
    pub lease: std::time::Duration,
    /// This instance's name in the leases (the host name by default).
    pub instance_name: Option<String>,
    /// Where `/metrics` is served without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// The token that reads `/metrics` on the service's address.
    pub metrics_token: Option<Arc<str>>,
    pub mail: MailSettings,
    pub intake: IntakeSettings,
    /// How often the SLA scheduler looks for warnings and breaches due.
    pub sla_check: std::time::Duration,
    /// Where "now" comes from.
    pub clock: Arc<dyn ticket_app::Clock>,
    /// Calendar days for the statutory answer to complaints; `None`: not tracked.
    pub statutory_days: Option<u32>,
    /// The share of a target at which clocks warn (contracts may set their own).
    pub warn_percent: u8,
    /// The base business calendar (contracts may set their own hours and zone on it).
    pub calendar: Arc<ticket_domain::calendar::BusinessCalendar>,
    /// How long an `Idempotency-Key` claim may go unanswered before a repeat takes it over.
    pub idempotency_stale: std::time::Duration,
    /// How long console sessions live.
    pub sessions: crate::accounts::SessionLimits,
    pub ledger: LedgerSettings,
    /// How long each category's personal data is kept (complaints: five years after the answer).
    pub retention: crate::privacy::Retention,
    /// How often the retention job looks for periods that have ended.
    pub retention_check: std::time::Duration,
}

/// The ledger's signing key and how often it signs.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub key: Option<Arc<ticket_ledger::checkpoint::LedgerKey>>,
    pub checkpoint_events: u64,
    pub checkpoint_interval: std::time::Duration,
    /// Where a signed checkpoint is mailed at start and once a day.
    pub mail_to: Option<lettre::message::Mailbox>,
}

/// Runs a background job: under its lease when instances share the store (see
/// `event_store::lease`), else at once; `body` runs until the token it is given is cancelled.
fn spawn_job<F, Fut>(
    leases: &Option<event_store::lease::Leases>,
    job: &'static str,
    shutdown: &CancellationToken,
    body: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let shutdown = shutdown.clone();
    match leases.clone() {
        Some(leases) => tokio::spawn(async move { leases.run_led(job, shutdown, body).await }),
        None => tokio::spawn(body(shutdown)),
    }
}

/// The retention job: every `every`, erases the personal data of each ticket whose period
/// has ended, and says what it did. A failure is logged and tried again next time.
async fn run_retention(
    privacy: Arc<crate::privacy::Privacy>,
    policy: crate::privacy::Retention,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    let context =
        ticket_app::CommandContext::new(ticket_domain::vocabulary::Actor::System { component: "retention".into() });
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match privacy.run_retention(&policy, &context).await {
            Ok(erased) if erased.is_empty() => tracing::debug!("retention: nothing due"),
            Ok(erased) => {
                let numbers: Vec<u64> = erased.iter().map(|t| t.number).collect();
                tracing::info!(count = erased.len(), ?numbers, "retention: personal data erased");
            }
            Err(e) => tracing::warn!(error = %e, "retention: the run failed; trying again next time"),
        }
    }
}

/// Signs a checkpoint and mails it to the auditors' address, at start and then once a day
/// (each instance; a copy more does no harm). A failure is logged and tried again next time.
async fn mail_checkpoints(
    database: event_store::Database,
    key: Arc<ticket_ledger::checkpoint::LedgerKey>,
    transport: ticket_mail::Transport,
    from: lettre::message::Mailbox,
    to: lettre::message::Mailbox,
    clock: Arc<dyn ticket_app::Clock>,
    shutdown: CancellationToken,
) {
    loop {
        match ticket_projections::ledger::checkpoint_now(&database, &key, clock.now()).await {
            Ok((size, note)) => {
                let body = format!(
                    "The ticket service's ledger checkpoint of {size} events, signed by {}.\n\
                     Keep this mail: it is the copy outside the service's database that makes its proofs mean \
                     something.\nCheck a proof with: ticketd verify-proof BUNDLE --public-key KEY \
                     --old-checkpoint THIS-CHECKPOINT.txt\n\n{note}",
                    key.name()
                );
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to.clone())
                    .subject(format!("Ledger checkpoint {size} ({})", key.name()))
                    .date(std::time::SystemTime::from(clock.now()))
                    .singlepart(
                        lettre::message::SinglePart::builder()
                            .header(lettre::message::header::ContentType::TEXT_PLAIN)
                            .body(body),
                    );
                match message {
                    Ok(message) => match transport.send(&message, &format!("ledger-checkpoint-{size}")).await {
                        Ok(()) => tracing::info!(size, to = %to.email, "ledger checkpoint mailed"),
                        Err(error) => tracing::warn!(%error, "the ledger checkpoint could not be mailed; next time"),
                    },
                    Err(error) => tracing::warn!(%error, "the ledger checkpoint mail could not be built"),
                }
            }
            Err(error) => tracing::warn!(%error, "no ledger checkpoint to mail; next time"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)) => {}
        }
    }
}

/// The public contact form's limits and where attachments go.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub attachments_dir: std::path::PathBuf,
    pub attachment_max_bytes: usize,
    pub contact_body_max_bytes: usize,
    pub contact_per_hour: u32,
    /// The largest raw message `POST /api/v1/intake/email` takes.
    pub mail_max_bytes: usize,
    /// A customer's mail within this long of the resolution reopens the ticket.
    pub reopen_window: chrono::Duration,
    /// The privacy notice the contact form links to.
    pub privacy_notice_url: Option<String>,
}

/// How mail leaves the service.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// `.eml` files in a folder.
    Files(std::path::PathBuf),
    /// An SMTP server (a lettre URL).
    Smtp(String),
    /// Mail is enqueued but not sent (until a later start with delivery on).
    Off,
}

impl IntakeSettings {
    pub fn attachment_store(&self) -> ticket_app::attachments::AttachmentStore {
        ticket_app::attachments::AttachmentStore::new(
            self.attachments_dir.clone(),
            self.attachment_max_bytes,
            ticket_app::attachments::ALLOWED_TYPES_DEFAULT.iter().map(|t| (*t).to_owned()).collect(),
        )
    }
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub delivery: Delivery,
    pub from: lettre::message::Mailbox,
    pub agents: Option<lettre::message::Mailbox>,
    /// Links in mails start with this; by default the address the service listens on.
    pub public_url: Option<String>,
    pub templates_dir: Option<std::path::PathBuf>,
    pub retry_base: std::time::Duration,
    pub retry_max: std::time::Duration,
}

/// Runs until SIGTERM or Ctrl-C, then stops taking connections, lets in-flight requests
/// finish, and stops the projections.
pub async fn serve(opened: OpenedStore, vault: Arc<ticket_vault::Vault>, config: ServeConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    // Everything but the ledger sees the store through the vault: personal parts sealed on
    // append and opened on read. The ledger hashes events as stored.
    let raw = opened.store.clone();
    let sealed: event_store::SharedStore = Arc::new(ticket_vault::SealedStore::new(raw.clone(), vault.clone()));
    // Every template is checked before anything starts: a broken edit stops the start, with why.
    let templates = Arc::new(ticket_mail::Templates::load(config.mail.templates_dir.as_deref())?);
    let transport = match &config.mail.delivery {
        Delivery::Files(dir) => Some(ticket_mail::Transport::directory(dir)),
        Delivery::Smtp(url) => Some(ticket_mail::Transport::smtp(url).map_err(anyhow::Error::msg)?),
        Delivery::Off => None,
    };
    // On PostgreSQL several instances may share the store: each background job runs on one of
    // them at a time, under a lease. SQLite is one instance (the file's instance lock).
    let leases = match &opened.database {
        event_store::Database::Postgres(_) => Some(event_store::lease::Leases::new(
            opened.database.clone(),
            event_store::lease::Leases::unique_holder(config.instance_name.as_deref()),
            config.instance_name.is_some(),
            config.lease,
        )),
        event_store::Database::Sqlite { .. } => None,
    };
    if let Some(leases) = &leases {
        tracing::info!(holder = leases.holder(), ttl_s = config.lease.as_secs(), "background jobs run under leases");
    }
    // The projections follow the log together: each new event read and decoded once.
    let followed = ticket_projections::FollowedLog::new(sealed.clone());
    let (outbox_status, outbox_task) = ticket_projections::spawn_led(
        ticket_mail::OutboxProjection::new(config.mail.from.email.domain(), config.mail.agents.is_some()),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let (index_status, index_task) = ticket_projections::spawn_led(
        ticket_projections::TicketIndex::default(),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let (view_status, view_task) = ticket_projections::spawn_led(
        ticket_projections::ticket_view::TicketView::new(sealed.clone()),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let (stats_status, stats_task) = ticket_projections::spawn_led(
        ticket_projections::statistics::Statistics::new(sealed.clone()),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let (marks_status, marks_task) = ticket_projections::spawn_led(
        ticket_projections::statistics::marks::StatsMarks::new(sealed.clone()),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let (ledger_status, ledger_task) = ticket_projections::ledger::spawn_led(
        ticket_projections::FollowedLog::new(raw.clone()),
        opened.database.clone(),
        ticket_projections::ledger::LedgerOptions {
            key: config.ledger.key.clone(),
            checkpoint_events: config.ledger.checkpoint_events,
            checkpoint_interval: config.ledger.checkpoint_interval,
            now: {
                let clock = config.clock.clone();
                Arc::new(move || clock.now())
            },
        },
        leases.clone(),
        shutdown.clone(),
    );
    let service = Arc::new(TicketService::new(sealed.clone(), config.clock.clone(), ServiceOptions::default()));
    let registry = Arc::new(ticket_app::registry::RegistryService::new(sealed.clone(), config.clock.clone()));
    let calendar = config.calendar.clone();
    let (sla_status, sla_task) = ticket_projections::spawn_led(
        ticket_projections::sla_clocks::SlaClocks::new(sealed.clone(), registry.clone(), calendar.clone())
            .with_statutory_days(config.statutory_days)
            .with_warn_percent(config.warn_percent),
        followed.clone(),
        opened.database.clone(),
        leases.clone(),
        shutdown.clone(),
    );
    let scheduler_task = {
        let (service, database, every) = (service.clone(), opened.database.clone(), config.sla_check);
        spawn_job(&leases, "sla_scheduler", &shutdown, move |stop| {
            ticket_projections::sla_clocks::run_scheduler(service.clone(), database.clone(), every, stop)
        })
    };
    let attachments = config.intake.attachment_store();
    let privacy = Arc::new(crate::privacy::Privacy {
        service: service.clone(),
        database: opened.database.clone(),
        vault: vault.clone(),
        attachments: attachments.clone(),
        outbox_dir: match &config.mail.delivery {
            Delivery::Files(dir) => Some(dir.clone()),
            _ => None,
        },
    });
    let retention_task = {
        let (privacy, policy, every) = (privacy.clone(), config.retention.clone(), config.retention_check);
        spawn_job(&leases, "retention", &shutdown, move |stop| {
            run_retention(privacy.clone(), policy.clone(), every, stop)
        })
    };
    // The process's metrics recorder, and its upkeep (histograms drained into their buckets)
    // whether or not anything scrapes.
    let metrics_handle = crate::metrics::install()?;
    let metrics_upkeep = {
        let (handle, stop) = (metrics_handle.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => handle.run_upkeep(),
                }
            }
        })
    };
    let state = AppState {
        service: service.clone(),
        database: opened.database.clone(),
        projections: Arc::new(vec![
            ("ticket_index", index_status),
            ("ticket_view", view_status),
            ("statistics", stats_status),
            ("stats_marks", marks_status),
            ("mail_outbox", outbox_status),
            ("sla_clocks", sla_status),
            ("ledger", ledger_status),
        ]),
        ledger_key: config.ledger.key.clone(),
        leases: leases.clone(),
        metrics: Some(metrics_handle.clone()),
        metrics_token: config.metrics_token.clone(),
        raw_store: raw.clone(),
        privacy: privacy.clone(),
        complaint_answer_days: config.statutory_days,
        company: config.mail.from.name.clone().unwrap_or_else(|| config.mail.from.email.domain().to_owned()).into(),
        tokens: Arc::default(),
        stats_days: Arc::default(),
        sla_reports: Arc::default(),
        intake: Arc::new(
            crate::intake::PublicIntake::new(
                attachments.clone(),
                config.intake.contact_body_max_bytes,
                config.intake.contact_per_hour,
            )
            .with_privacy_notice(config.intake.privacy_notice_url.clone()),
        ),
        mail_intake: Arc::new(ticket_mail::intake::MailIntake {
            service: service.clone(),
            database: opened.database.clone(),
            attachments,
            reopen_window: config.intake.reopen_window,
            registry: registry.clone(),
        }),
        mail_intake_max_bytes: config.intake.mail_max_bytes,
        registry,
        calendar,
        numbers: Arc::new(crate::numbers::Numbers::new(opened.database.clone())),
        idempotency_stale: config.idempotency_stale,
        console: Arc::new(crate::console::Console::new(config.sessions, config.mail.public_url.as_deref())),
    };
    let live_task = tokio::spawn(crate::console::live::run(
        state.console.live.clone(),
        sealed.clone(),
        opened.database.clone(),
        shutdown.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, backend = opened.store.backend(), "serving");
    // Tests and scripts read the address from here (it matters with port 0).
    println!("listening on http://{address}");
    let dispatcher_task = transport.map(|transport| {
        let dispatcher = ticket_mail::Dispatcher {
            service: state.service.clone(),
            registry: state.registry.clone(),
            database: opened.database.clone(),
            transport,
            templates,
            config: ticket_mail::MailConfig {
                from: config.mail.from.clone(),
                agents: config.mail.agents.clone(),
                agents_language: ticket_domain::vocabulary::Language::Hu,
                public_url: config.mail.public_url.clone().unwrap_or_else(|| format!("http://{address}")),
                retry_base: config.mail.retry_base,
                retry_max: config.mail.retry_max,
                poll: std::time::Duration::from_millis(250),
            },
        };
        let dispatcher = Arc::new(dispatcher);
        let shutdown = shutdown.clone();
        match leases.clone() {
            Some(leases) => tokio::spawn(async move {
                leases
                    .run_led_fenced("mail_dispatcher", shutdown, move |stop, fence| {
                        let dispatcher = dispatcher.clone();
                        async move { dispatcher.run(stop, Some(fence)).await }
                    })
                    .await
            }),
            None => tokio::spawn(async move { dispatcher.run(shutdown, None).await }),
        }
    });
    let checkpoint_mail_task = match (&config.ledger.mail_to, &config.ledger.key) {
        (Some(to), Some(key)) => {
            let transport = match &config.mail.delivery {
                Delivery::Files(dir) => Some(ticket_mail::Transport::directory(dir)),
                Delivery::Smtp(url) => Some(ticket_mail::Transport::smtp(url).map_err(anyhow::Error::msg)?),
                Delivery::Off => None,
            };
            match transport {
                Some(transport) => {
                    let (database, key, from, to, clock) = (
                        opened.database.clone(),
                        key.clone(),
                        config.mail.from.clone(),
                        to.clone(),
                        config.clock.clone(),
                    );
                    Some(spawn_job(&leases, "ledger_checkpoint_mail", &shutdown, move |stop| {
                        mail_checkpoints(
                            database.clone(),
                            key.clone(),
                            transport.clone(),
                            from.clone(),
                            to.clone(),
                            clock.clone(),
                            stop,
                        )
                    }))
                }
                None => {
                    tracing::warn!("--ledger-mail-to is set but mail is off: no checkpoint is mailed");
                    None
                }
            }
        }
        (Some(_), None) => {
            anyhow::bail!("--ledger-mail-to needs --ledger-key: only a signed checkpoint is worth mailing")
        }
        _ => None,
    };
    let metrics_task = match config.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?;
            tracing::info!(address = %listener.local_addr()?, "serving /metrics");
            let app = http::metrics_app(state.clone());
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
            }))
        }
        None => None,
    };
    let signal = shutdown.clone();
    // Answers are small and complete: send them at once rather than wait to coalesce (Nagle).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The client's address reaches handlers (the contact form's per-client limit).
    let app = http::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.cancel();
        })
        .await?;
    shutdown.cancel();
    let _ = index_task.await;
    let _ = view_task.await;
    let _ = stats_task.await;
    let _ = marks_task.await;
    let _ = outbox_task.await;
    let _ = sla_task.await;
    let _ = ledger_task.await;
    let _ = scheduler_task.await;
    let _ = retention_task.await;
    let _ = live_task.await;
    if let Some(task) = checkpoint_mail_task {
        let _ = task.await;
    }
    if let Some(task) = dispatcher_task {
        let _ = task.await;
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let _ = metrics_upkeep.await;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
