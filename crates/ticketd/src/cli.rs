//! The command line: `ticketd migrate`, `ticketd replay`, … Configuration comes from flags or
//! the environment (`TICKETD_DATABASE_URL`, …); see README.md.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ticket_app::{ServiceOptions, SystemClock, TicketRecord, TicketService};
use ticket_domain::vocabulary::{TicketId, TicketNumber};

/// The default store: an SQLite file under ./data, created on first use.
pub const DATABASE_URL_DEFAULT: &str = "sqlite:data/tickets.db";

#[derive(Debug, Parser)]
#[command(name = "ticketd", version, about = "The complaint-handling ticket service")]
struct Cli {
    /// Where events are stored: `sqlite:PATH` (embedded, the default) or `postgres://…`.
    #[arg(long, global = true, env = "TICKETD_DATABASE_URL", default_value = DATABASE_URL_DEFAULT)]
    database_url: String,
    /// Log lines as text or JSON.
    #[arg(long, global = true, env = "TICKETD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The key-encryption keys that wrap every ticket's data key (`ID BASE64` a line, the
    /// current first). Made on first start when the database holds no data key yet. Keep it
    /// out of the database's backups: without it no personal data can be read.
    #[arg(long, global = true, env = "TICKETD_KEK_FILE", default_value = "data/personal.keys")]
    kek_file: std::path::PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP service (and its projections) until SIGTERM or Ctrl-C.
    Serve {
        /// The address to listen on (`127.0.0.1:0` picks a free port, printed on start).
        #[arg(long, env = "TICKETD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        mail: MailArgs,
        #[command(flatten)]
        intake: IntakeArgs,
        /// How often (seconds) the SLA scheduler records the warnings and breaches due.
        #[arg(long, env = "TICKETD_SLA_CHECK_SECONDS", default_value_t = 15)]
        sla_check_seconds: u64,
        /// On PostgreSQL, each background job (every projection, the SLA scheduler, the mail
        /// dispatcher, the retention job, the checkpoint mail) runs on one instance at a time
        /// under a lease of this many seconds: a crashed leader's jobs move to a standby
        /// within it (and a second), a stopped one's at once.
        #[arg(long, env = "TICKETD_LEASE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=300))]
        lease_seconds: u64,
        /// This instance's name in the job leases (`NAME:pid:random`; the host name by
        /// default). Give each instance its own (a pod's name): a crashed run's leases are then
        /// taken back at once by the next run of the same name, others wait for the expiry.
        #[arg(long, env = "TICKETD_INSTANCE_NAME")]
        instance_name: Option<String>,
        /// Serve `/metrics` (Prometheus text format) on this address too, without a token: an
        /// address only the scraper reaches.
        #[arg(long, env = "TICKETD_METRICS_LISTEN")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// The bearer token that reads `/metrics` on the service's own address (without it,
        /// `/metrics` is served on `--metrics-listen` only).
        #[arg(long, env = "TICKETD_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// How long (seconds) a request with an `Idempotency-Key` may go unanswered before a
        /// repeat with the key takes it over (running the command again with the same ids, so
        /// at most once); until then repeats get `409 request_in_progress` with `Retry-After`.
        #[arg(long, env = "TICKETD_IDEMPOTENCY_STALE_SECONDS", default_value_t = crate::idempotency::CLAIM_STALE_AFTER.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        idempotency_stale_seconds: u64,
        /// A console session ends after this many minutes without a request.
        #[arg(long, env = "TICKETD_SESSION_IDLE_MINUTES", default_value_t = 480,
              value_parser = clap::value_parser!(u64).range(1..=525_600))]
        session_idle_minutes: u64,
        /// A console session ends this many hours after sign-in, however busy.
        #[arg(long, env = "TICKETD_SESSION_MAX_HOURS", default_value_t = 72,
              value_parser = clap::value_parser!(u64).range(1..=8_760))]
        session_max_hours: u64,
        /// For tests and drills only: read "now" from this file (one RFC 3339 instant) instead
        /// of the system clock, so that time can be moved through a running service.
        #[arg(long, env = "TICKETD_CLOCK_FILE")]
        clock_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        sla: SlaArgs,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[command(flatten)]
        retention: RetentionArgs,
    },
    /// Takes in the customer e-mail a mail server delivered to a Maildir (`DIR/new`, `DIR/cur`):
    /// each message becomes a ticket or a reply, then moves to `DIR/.processed/cur` (or, when
    /// it cannot be read, to `DIR/.failed/cur`), so nothing is taken twice.
    IngestMaildir {
        dir: std::path::PathBuf,
        /// Keep watching, looking again every this many seconds.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
        #[command(flatten)]
        intake: IntakeArgs,
    },
    /// Service contracts: who their reporters are, their SLA targets, their calendar.
    Contract {
        #[command(subcommand)]
        command: ContractCommand,
    },
    /// Divisions that escalated tickets go to.
    Division {
        #[command(subcommand)]
        command: DivisionCommand,
    },
    /// The staff directory and console accounts: who tickets are assigned to, their address, role and password.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// The mail outbox: what is waiting, sent, skipped or failed.
    Outbox {
        /// Every mail, not only those not delivered yet.
        #[arg(long)]
        all: bool,
        /// How many mails to list, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Sends a failed mail again (after fixing why the server refused it).
        #[arg(long, value_name = "ID")]
        retry: Option<String>,
    },
    /// Creates or upgrades the database schema, then exits.
    Migrate,
    /// Writes a consistent copy of the store into DIR while the service runs: SQLite's online
    /// backup (`VACUUM INTO`, a file to run `serve` on), or on PostgreSQL `pg_dump
    /// --format=custom` of the store's schema (restore it with `pg_restore`: see README,
    /// "Backups and restore"). The key file is not in it: keep it apart.
    Backup {
        /// The folder the backup is written into (made if missing).
        dir: std::path::PathBuf,
    },
    /// Rebuilds read models from the whole log (all, or the ones named): each is built aside
    /// and swapped in with one commit, so a running service keeps answering from the old one
    /// until then, and follows the rebuilt checkpoint after.
    Rebuild {
        /// ticket_index, ticket_view, statistics, stats_marks, sla_clocks; none for all.
        names: Vec<String>,
        /// Events per transaction while building aside (a progress line is printed after each).
        #[arg(long, default_value_t = ticket_projections::REBUILD_BATCH_MAX)]
        page_events: usize,
        /// As for `serve`: the SLA clocks are rebuilt with the same settings.
        #[command(flatten)]
        sla: SlaArgs,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The tamper-evident ledger: its signing key and checkpoints.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Recomputes the whole log against the ledger and every signed checkpoint, and names the
    /// first event altered, removed, reordered or inserted, by its position. Exits 1 if
    /// anything differs.
    Verify {
        /// The ledger's public key (the text `NAME+ID+BASE64`, or a file holding it); without
        /// it, `--ledger-key`'s.
        #[arg(long, env = "TICKETD_LEDGER_PUBLIC_KEY")]
        public_key: Option<String>,
        /// The private key file (its public half checks the checkpoints).
        #[arg(long, env = "TICKETD_LEDGER_KEY")]
        ledger_key: Option<std::path::PathBuf>,
        /// Signed checkpoints kept outside the database (e.g. the mailed copies), checked too.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<std::path::PathBuf>,
    },
    /// Checks an exported proof bundle (a ticket's proof, a consistency proof, or an audit
    /// export's lines) offline, with no database: the auditor's own tool. Exits 1 if it fails.
    VerifyProof {
        file: std::path::PathBuf,
        /// The ledger's public key (the text `NAME+ID+BASE64`, or a file holding it).
        #[arg(long)]
        public_key: String,
        /// For a consistency proof: the older checkpoint as the auditor kept it (instead of
        /// the one in the bundle).
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<std::path::PathBuf>,
    },
    /// A person's data (GDPR): erase it from every ticket of theirs.
    Subjects {
        #[command(subcommand)]
        command: SubjectsCommand,
    },
    /// Runs the retention job once (as `serve` does every hour) and prints what it erased.
    Retention {
        #[command(flatten)]
        retention: RetentionArgs,
        #[command(flatten)]
        copies: CopiesArgs,
    },
    /// The key-encryption keys that wrap every ticket's data key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prints a ticket's full history: who did what, when.
    Replay {
        /// The ticket's id (a UUID) or its number.
        ticket: String,
        /// Print one JSON object per event instead of a timeline.
        #[arg(long)]
        json: bool,
        /// Only the events recorded up to this RFC 3339 instant: the ticket as it stood then.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
}

#[derive(Debug, Subcommand)]
enum SubjectsCommand {
    /// Erases the person's personal data from every ticket of theirs (as
    /// `POST /api/v1/subjects/erase`): a ticket that is or was a complaint is kept five years
    /// after its answer, its processing restricted meanwhile. Prints one JSON line a ticket.
    Erase {
        #[arg(long, required_unless_present = "phone")]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// Why (recorded with the erasure).
        #[arg(long)]
        reason: String,
        /// The request's reference (the data-protection officer's case number).
        #[arg(long)]
        reference: String,
        #[command(flatten)]
        copies: CopiesArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Makes a new current key-encryption key, re-wraps every data key under it, then drops
    /// the old keys from the key file (which must be a file, not TICKETD_KEK). Stop every
    /// instance first: a running one knows only the keys it started with.
    Rotate {
        /// The new key's id (default: kek-YYYYMMDDHHMMSS).
        #[arg(long)]
        new_id: Option<String>,
    },
}

/// Where the copies of personal data outside the database are (as `serve` is given them).
#[derive(Debug, clap::Args)]
struct CopiesArgs {
    #[arg(long, env = "TICKETD_ATTACHMENTS_DIR", default_value = "data/attachments")]
    attachments_dir: std::path::PathBuf,
    #[arg(long, env = "TICKETD_OUTBOX_DIR", default_value = "data/outbox")]
    outbox_dir: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Creates the ledger's ed25519 signing key: the private key file (mode 0600, never
    /// overwritten) and FILE.pub with the public key auditors keep. Needs no database.
    InitKey {
        /// The private key file to create.
        #[arg(long, default_value = "data/ledger.key")]
        out: std::path::PathBuf,
        /// The key's name, which every checkpoint states as its origin (no spaces or '+').
        #[arg(long, default_value = "ticketd.local/ledger")]
        name: String,
    },
    /// Signs a checkpoint of the ledger as it stands now and prints it.
    Checkpoint {
        #[arg(long, env = "TICKETD_LEDGER_KEY")]
        ledger_key: std::path::PathBuf,
    },
    /// Prints the public key of a private key file.
    PublicKey {
        #[arg(long, env = "TICKETD_LEDGER_KEY")]
        ledger_key: std::path::PathBuf,
    },
}

/// How long personal data is kept.
#[derive(Debug, clap::Args)]
struct RetentionArgs {
    /// Erase a category's personal data this many days after the ticket is closed
    /// (`CATEGORY=DAYS`, repeatable, e.g. `bug_report=1095`). A complaint is kept five years
    /// after its answer at least (Act CLV of 1997 §17/A); categories not named are kept.
    #[arg(long = "retention", env = "TICKETD_RETENTION", value_delimiter = ',', value_name = "CATEGORY=DAYS")]
    rules: Vec<String>,
    /// How often (seconds) the retention job looks for periods that have ended.
    #[arg(long, env = "TICKETD_RETENTION_CHECK_SECONDS", default_value_t = 3_600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    retention_check_seconds: u64,
}

impl RetentionArgs {
    fn policy(&self) -> anyhow::Result<crate::privacy::Retention> {
        crate::privacy::Retention::parse(&self.rules).map_err(anyhow::Error::msg)
    }
}

/// The ledger's signed checkpoints.
#[derive(Debug, clap::Args)]
struct LedgerArgs {
    /// The ledger's private signing key file (`ticketd ledger init-key`). Without it the
    /// ledger still records every event, but signs no checkpoints.
    #[arg(long, env = "TICKETD_LEDGER_KEY")]
    ledger_key: Option<std::path::PathBuf>,
    /// Sign a checkpoint after this many new events…
    #[arg(long, env = "TICKETD_LEDGER_CHECKPOINT_EVENTS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    ledger_checkpoint_events: u64,
    /// …or this many seconds after the last one, if the log has grown.
    #[arg(long, env = "TICKETD_LEDGER_CHECKPOINT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ledger_checkpoint_seconds: u64,
    /// Mail a freshly signed checkpoint to this address at start and once a day: the copy
    /// outside the database that makes the proofs mean something (needs `--ledger-key` and mail on).
    #[arg(long, env = "TICKETD_LEDGER_MAIL_TO")]
    ledger_mail_to: Option<String>,
}

/// A public key given as its text or as a file holding it.
fn public_key_text(given: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(given);
    let text = if !given.contains('+') || path.exists() {
        std::fs::read_to_string(path).with_context(|| format!("reading the public key file {given}"))?
    } else {
        given.to_owned()
    };
    Ok(text.trim().to_owned())
}

/// The commands that need no database.
fn run_offline(command: &Command) -> Option<anyhow::Result<()>> {
    match command {
        Command::Ledger { command: LedgerCommand::InitKey { out, name } } => Some(init_key(out, name)),
        Command::Ledger { command: LedgerCommand::PublicKey { ledger_key } } => {
            Some(ticket_ledger::checkpoint::LedgerKey::read(ledger_key).map_err(Into::into).map(|key| {
                println!("{}", key.public_key());
            }))
        }
        Command::VerifyProof { file, public_key, old_checkpoint } => {
            Some(verify_proof(file, public_key, old_checkpoint.as_deref()))
        }
        _ => None,
    }
}

fn init_key(out: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let (private, public) = ticket_ledger::checkpoint::LedgerKey::generate(name)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten: checkpoints signed with it would no longer verify)",
            out.display()
        )
    })?;
    std::io::Write::write_all(&mut file, format!("{private}\n").as_bytes())?;
    let public_file = std::path::PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&public_file, format!("{public}\n"))?;
    println!("private key: {} (keep it secret; give it to `serve --ledger-key`)", out.display());
    println!("public key:  {} (give it to the auditors)", public_file.display());
    println!("{public}");
    Ok(())
}

fn verify_proof(
    file: &std::path::Path,
    public_key: &str,
    old_checkpoint: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use ticket_ledger::bundle::{self, Verified};
    let public_key = public_key_text(public_key)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let old = old_checkpoint
        .map(|path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display())))
        .transpose()?;
    // A bundle is one JSON document; an audit export is one per line, each with its `proof`.
    let documents: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => vec![value],
        Err(_) => text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("line {} is not JSON", i + 1)))
            .collect::<anyhow::Result<_>>()?,
    };
    let mut failed = 0;
    for (i, mut document) in documents.into_iter().enumerate() {
        let label = match document.get("number") {
            Some(number) => format!("ticket {number}"),
            None => format!("bundle {}", i + 1),
        };
        if document.get("format").is_none() {
            match document.get_mut("proof").map(serde_json::Value::take) {
                Some(proof) => document = proof,
                None => anyhow::bail!("{label} has no `format` and no `proof`: not a proof bundle or an audit export"),
            }
        }
        if let (Some(old), Some(object)) = (&old, document.as_object_mut()) {
            object.insert("old_checkpoint".into(), serde_json::Value::String(old.clone()));
        }
        match bundle::verify(&document.to_string(), &public_key) {
            Ok(Verified::Events { stream, events, checkpoint, not_yet_in_checkpoint, sealed_in_place }) => println!(
                "OK {label}: {events} events of {stream} are in the signed tree of {} events ({}){}",
                checkpoint.size,
                checkpoint.signed_at.map_or("no time".into(), |at| format!("signed {}", at.to_rfc3339())),
                match (not_yet_in_checkpoint, sealed_in_place) {
                    (0, 0) => String::new(),
                    (later, 0) => format!("; {later} later events are not in that checkpoint yet"),
                    (later, sealed) => format!(
                        "; {sealed} sealed in place by `ticketd migrate` (the proof is of the leaf recorded, and their \
                         PersonalDataSealed record in this bundle lists the change); {later} later events are not in \
                         that checkpoint yet"
                    ),
                }
            ),
            Ok(Verified::Consistency { old_size, new_size }) => {
                println!("OK {label}: the signed tree of {new_size} events extends the tree of {old_size} events")
            }
            Err(error) => {
                failed += 1;
                println!("FAILED {label}: {error}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of the bundles did not verify");
    }
    Ok(())
}

/// The public contact form and attachments.
#[derive(Debug, clap::Args)]
struct IntakeArgs {
    /// Where attachments are stored (content-addressed by SHA-256).
    #[arg(long, env = "TICKETD_ATTACHMENTS_DIR", default_value = "data/attachments")]
    attachments_dir: std::path::PathBuf,
    /// The largest attachment accepted.
    #[arg(long, env = "TICKETD_ATTACHMENT_MAX_BYTES", default_value_t = ticket_app::attachments::ATTACHMENT_BYTES_MAX_DEFAULT)]
    attachment_max_bytes: usize,
    /// The largest contact-form request (the fields and the attachment together).
    #[arg(long, env = "TICKETD_CONTACT_BODY_MAX_BYTES", default_value_t = 6 * 1024 * 1024)]
    contact_body_max_bytes: usize,
    /// Reports per hour accepted from one client address, and for one e-mail address.
    #[arg(long, env = "TICKETD_CONTACT_PER_HOUR", default_value_t = 10)]
    contact_per_hour: u32,
    /// The largest raw message `POST /api/v1/intake/email` takes.
    #[arg(long, env = "TICKETD_INTAKE_MAIL_MAX_BYTES", default_value_t = 25 * 1024 * 1024)]
    intake_mail_max_bytes: usize,
    /// A customer's e-mail within this many days of the resolution reopens the ticket.
    #[arg(long, env = "TICKETD_REOPEN_WINDOW_DAYS", default_value_t = 14)]
    reopen_window_days: u32,
    /// The privacy notice the contact form links to (the policy's "Adatkezelési tájékoztató").
    #[arg(long, env = "TICKETD_PRIVACY_NOTICE_URL")]
    privacy_notice_url: Option<String>,
}

impl IntakeArgs {
    fn settings(self) -> crate::server::IntakeSettings {
        crate::server::IntakeSettings {
            attachments_dir: self.attachments_dir,
            attachment_max_bytes: self.attachment_max_bytes,
            contact_body_max_bytes: self.contact_body_max_bytes,
            contact_per_hour: self.contact_per_hour,
            mail_max_bytes: self.intake_mail_max_bytes,
            reopen_window: chrono::Duration::days(i64::from(self.reopen_window_days)),
            privacy_notice_url: self.privacy_notice_url,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MailMode {
    /// `.eml` files in --outbox-dir.
    Files,
    /// Through the SMTP server at --smtp-url.
    Smtp,
    /// Kept in the outbox, not sent (sent by a later start with delivery on).
    Off,
}

/// Customer mail: confirmations, replies, resolutions, surveys.
#[derive(Debug, clap::Args)]
struct MailArgs {
    /// How mail leaves the service.
    #[arg(long, env = "TICKETD_MAIL", value_enum, default_value_t = MailMode::Files)]
    mail: MailMode,
    /// Where `--mail files` writes one `.eml` file per mail.
    #[arg(long, env = "TICKETD_OUTBOX_DIR", default_value = "data/outbox")]
    outbox_dir: std::path::PathBuf,
    /// `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`
    /// (TLS); `user:password@host` for AUTH.
    #[arg(long, env = "TICKETD_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of every mail; its domain ends every Message-ID.
    #[arg(long, env = "TICKETD_MAIL_FROM", default_value = "Ügyfélszolgálat <support@localhost>")]
    mail_from: String,
    /// Where new-ticket notifications go (none: not sent).
    #[arg(long, env = "TICKETD_MAIL_AGENTS")]
    mail_agents: Option<String>,
    /// The service's public address, for links in mails (default: the listen address).
    #[arg(long, env = "TICKETD_PUBLIC_URL")]
    public_url: Option<String>,
    /// A folder of templates overriding the built-in ones (`hu/confirmation.txt`, …).
    #[arg(long, env = "TICKETD_TEMPLATES_DIR")]
    templates_dir: Option<std::path::PathBuf>,
    /// The first retry of a failed delivery waits this long; each later one twice as long.
    #[arg(long, env = "TICKETD_MAIL_RETRY_BASE_MS", default_value_t = 5_000)]
    mail_retry_base_ms: u64,
    /// The longest wait between retries.
    #[arg(long, env = "TICKETD_MAIL_RETRY_MAX_S", default_value_t = 900)]
    mail_retry_max_s: u64,
}

impl MailArgs {
    fn settings(self) -> anyhow::Result<crate::server::MailSettings> {
        use crate::server::Delivery;
        let delivery = match self.mail {
            MailMode::Files => Delivery::Files(self.outbox_dir),
            MailMode::Smtp => Delivery::Smtp(self.smtp_url.context("--mail smtp needs --smtp-url (TICKETD_SMTP_URL)")?),
            MailMode::Off => Delivery::Off,
        };
        let mailbox = |value: &str, flag: &str| {
            value.parse::<lettre::message::Mailbox>().with_context(|| format!("{flag} '{value}' is not a mail address"))
        };
        Ok(crate::server::MailSettings {
            delivery,
            from: mailbox(&self.mail_from, "--mail-from")?,
            agents: self.mail_agents.as_deref().map(|a| mailbox(a, "--mail-agents")).transpose()?,
            public_url: self.public_url,
            templates_dir: self.templates_dir,
            retry_base: std::time::Duration::from_millis(self.mail_retry_base_ms.max(1)),
            retry_max: std::time::Duration::from_secs(self.mail_retry_max_s.max(1)),
        })
    }
}

#[derive(Debug, Subcommand)]
enum ContractCommand {
    /// Lists the contracts (JSON, one per line).
    List,
    /// Creates or changes a contract from a JSON file of its terms (as `PUT /api/v1/contracts/{id}`).
    Put {
        id: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Retires a contract: it keeps its tickets, matches no new reporter.
    Retire { id: String },
    /// Sets the contract for reporters no contract names.
    Default { id: String },
}

#[derive(Debug, Subcommand)]
enum DivisionCommand {
    /// Lists the divisions (JSON, one per line).
    List,
    /// Creates or changes a division.
    Put {
        id: String,
        #[arg(long)]
        name: String,
        /// Where escalations to it are announced.
        #[arg(long)]
        email: String,
        /// Business minutes within which it should answer an escalation.
        #[arg(long)]
        answer_minutes: Option<u32>,
    },
}

/// How SLA clocks are computed (the same for `serve` and `rebuild`).
#[derive(Debug, clap::Args)]
struct SlaArgs {
    /// Calendar days within which a complaint must be answered (Act CLV of 1997 §17/A);
    /// 0 turns the statutory clock off.
    #[arg(long, env = "TICKETD_COMPLAINT_ANSWER_DAYS", default_value_t = ticket_projections::sla_clocks::STATUTORY_DAYS)]
    complaint_answer_days: u32,
    /// A directory of calendar year files (`2027.toml`, shaped like `deploy/calendars/hu/`):
    /// each replaces the built-in file of its year, or adds a year, without a new build.
    #[arg(long, env = "TICKETD_CALENDARS_DIR")]
    calendars_dir: Option<std::path::PathBuf>,
    /// The share of an SLA target (1-99%) at which its clock warns, unless the contract sets its own.
    #[arg(long, env = "TICKETD_SLA_WARN_PERCENT", default_value_t = ticket_projections::sla_clocks::WARN_PERCENT,
          value_parser = clap::value_parser!(u8).range(1..=99))]
    sla_warn_percent: u8,
}

impl SlaArgs {
    fn statutory_days(&self) -> Option<u32> {
        (self.complaint_answer_days > 0).then_some(self.complaint_answer_days)
    }

    fn calendar(&self) -> anyhow::Result<Arc<ticket_domain::calendar::BusinessCalendar>> {
        use ticket_domain::calendar::{BusinessCalendar, read_year_files};
        let years = match &self.calendars_dir {
            Some(dir) => read_year_files(dir)?,
            None => Vec::new(),
        };
        Ok(Arc::new(BusinessCalendar::hungary_with(years)?))
    }
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Lists the staff directory (JSON, one per line; whether each has a password and a second factor).
    List,
    /// Creates or updates a member of staff: their address (mailed about breaches on tickets
    /// assigned to them) and, with a role, a console account. Unset options keep their value.
    Put {
        /// The name tickets are assigned to and their events record (their sign-in name).
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// agent, quality_manager, auditor or admin: what they may do in the console.
        #[arg(long)]
        role: Option<String>,
        /// The name the console shows.
        #[arg(long)]
        display_name: Option<String>,
        /// The console's language for them: hu or en.
        #[arg(long)]
        language: Option<String>,
        /// Reads the new password from standard input (its first line).
        #[arg(long)]
        password_stdin: bool,
        /// Asks for a new password on the terminal (without echo). Implied for an account with a
        /// role when standard input is a terminal (Enter alone keeps the current password).
        #[arg(long)]
        password: bool,
    },
    /// Disables a member of staff: their sessions end, they cannot sign in or be assigned.
    Disable { name: String },
    /// Enables a disabled member of staff again.
    Enable { name: String },
    /// Turns on the TOTP second factor (RFC 6238) and prints its otpauth:// URL for an
    /// authenticator app; `--off` turns it off.
    Totp {
        name: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Creates a token and prints it once on stdout; only its hash is stored.
    Create {
        /// agent, quality_manager, auditor, admin, or intake (may only deliver e-mail).
        #[arg(long)]
        role: String,
        /// Who holds it; recorded as the actor of every event it causes.
        #[arg(long)]
        name: String,
    },
    /// Lists the tokens (names and roles; never the tokens).
    List,
    /// Revokes a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // TLS (SMTP over STARTTLS or TLS) uses ring; said once, so no crate's choice can differ.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    #[cfg(feature = "otel")]
    crate::otel::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TICKETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    #[cfg(feature = "otel")]
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    {
        match crate::otel::layer() {
            Ok(otel) => {
                use tracing_subscriber::prelude::*;
                let registry = tracing_subscriber::registry().with(filter).with(otel);
                match format {
                    LogFormat::Text => {
                        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).init()
                    }
                    LogFormat::Json => {
                        registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init()
                    }
                }
                return;
            }
            Err(error) => eprintln!("OpenTelemetry traces are off: {error}"),
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A PostgreSQL URL without its password, and the password (percent-decoded).
fn url_without_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return (url.to_owned(), None) };
    let Some((user, password)) = userinfo.split_once(':') else { return (url.to_owned(), None) };
    let decoded = percent_decode(password);
    let slash = if rest.contains('/') { "/" } else { "" };
    (format!("{scheme}://{user}@{host}{slash}{tail}"), Some(decoded))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Takes the SQLite file's instance lock (`FILE.serve.lock`, released when the process ends,
/// however it ends), or says why not: one `serve` per SQLite file. `None` for PostgreSQL.
fn sqlite_instance_lock(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = event_store::sqlite_path(url) else { return Ok(None) };
    if path.starts_with(":memory:") || path.contains("mode=memory") {
        return Ok(None);
    }
    let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // One lock per database file, however it is named (a relative path, a symlink).
    let path = match (path.parent().filter(|d| !d.as_os_str().is_empty()), path.file_name()) {
        (Some(dir), Some(name)) => dir.canonicalize().map(|d| d.join(name)).unwrap_or_else(|_| path.to_path_buf()),
        _ => std::fs::canonicalize(".").map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf()),
    };
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let path = path.display().to_string();
    let lock_path = std::path::PathBuf::from(format!("{path}.serve.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the instance lock {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `ticketd serve` already runs on the SQLite store {path} (it holds {}): SQLite serves one \
             instance; stop that one first, or run several instances on PostgreSQL",
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            // A file system without locks: serve, but say that nothing stops a second one.
            tracing::warn!(%error, lock = %lock_path.display(), "the SQLite instance lock is not available here: run one serve per file");
            Ok(Some(file))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(result) = run_offline(&cli.command) {
        return result;
    }
    // One clock for everything the service reads as "now", the store's `recorded_at` included.
    let clock: Arc<dyn ticket_app::Clock> = match &cli.command {
        Command::Serve { clock_file: Some(path), .. } => {
            tracing::warn!(path = %path.display(), "the clock is read from a file (tests and drills only)");
            ticket_app::FileClock::new(path.clone())
        }
        _ => Arc::new(SystemClock),
    };
    // SQLite is one instance: a second `serve` on the same file refuses to start.
    let _instance_lock = match &cli.command {
        Command::Serve { .. } => sqlite_instance_lock(&cli.database_url)?,
        _ => None,
    };
    let store_clock = {
        let clock = clock.clone();
        event_store::StoreClock::new(move || clock.now())
    };
    let opened = event_store::open_with_clock(&cli.database_url, store_clock)
        .await
        .with_context(|| format!("opening the store at {}", cli.database_url))?;
    crate::auth::migrate(&opened.database).await?;
    ticket_projections::migrate(&opened.database).await?;
    ticket_mail::migrate(&opened.database).await?;
    ticket_vault::migrate(&opened.database).await?;
    let vault = Arc::new(open_vault(&opened.database, &cli.kek_file).await?);
    // The store as held (the ledger hashes it), and as everything else sees it: personal parts
    // sealed on append and opened on read.
    let raw = opened.store.clone();
    let store: event_store::SharedStore = Arc::new(ticket_vault::SealedStore::new(raw.clone(), vault.clone()));
    match cli.command {
        Command::Serve {
            listen,
            mail,
            intake,
            sla_check_seconds,
            lease_seconds,
            instance_name,
            metrics_listen,
            metrics_token,
            idempotency_stale_seconds,
            session_idle_minutes,
            session_max_hours,
            clock_file: _,
            sla,
            ledger,
            retention,
        } => {
            let mail = mail.settings()?;
            let intake = intake.settings();
            let sla_check = std::time::Duration::from_secs(sla_check_seconds.max(1));
            let config = crate::server::ServeConfig {
                listen,
                lease: std::time::Duration::from_secs(lease_seconds),
                instance_name,
                metrics_listen,
                metrics_token: metrics_token.filter(|t| !t.is_empty()).map(Into::into),
                mail,
                intake,
                sla_check,
                clock,
                statutory_days: sla.statutory_days(),
                warn_percent: sla.sla_warn_percent,
                calendar: sla.calendar()?,
                idempotency_stale: std::time::Duration::from_secs(idempotency_stale_seconds),
                sessions: crate::accounts::SessionLimits {
                    idle: chrono::Duration::minutes(session_idle_minutes as i64),
                    absolute: chrono::Duration::hours(session_max_hours as i64),
                },
                retention: retention.policy()?,
                retention_check: std::time::Duration::from_secs(retention.retention_check_seconds),
                ledger: crate::server::LedgerSettings {
                    key: ledger
                        .ledger_key
                        .as_deref()
                        .map(ticket_ledger::checkpoint::LedgerKey::read)
                        .transpose()?
                        .map(Arc::new),
                    checkpoint_events: ledger.ledger_checkpoint_events,
                    checkpoint_interval: std::time::Duration::from_secs(ledger.ledger_checkpoint_seconds),
                    mail_to: ledger
                        .ledger_mail_to
                        .as_deref()
                        .map(|a| {
                            a.parse::<lettre::message::Mailbox>()
                                .with_context(|| format!("--ledger-mail-to '{a}' is not a mail address"))
                        })
                        .transpose()?,
                },
            };
            crate::server::serve(opened, vault.clone(), config).await?;
        }
        Command::IngestMaildir { dir, watch, intake } => {
            let settings = intake.settings();
            let service = Arc::new(TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
            let registry = Arc::new(ticket_app::registry::RegistryService::new(store.clone(), Arc::new(SystemClock)));
            let intake = ticket_mail::intake::MailIntake {
                registry,
                service,
                database: opened.database.clone(),
                attachments: settings.attachment_store(),
                reopen_window: settings.reopen_window,
            };
            if let (Some(seconds), event_store::Database::Postgres(_)) = (watch, &opened.database) {
                // Watchers on several hosts: one takes the folder in at a time, under a lease.
                let leases = event_store::lease::Leases::new(
                    opened.database.clone(),
                    event_store::lease::Leases::unique_holder(None),
                    false,
                    event_store::lease::TTL_DEFAULT,
                );
                let shutdown = tokio_util::sync::CancellationToken::new();
                let stopping = shutdown.clone();
                tokio::spawn(async move {
                    crate::server::wait_for_signal().await;
                    stopping.cancel();
                });
                // One lease per folder (leaked once: a job's name lives as long as the process).
                let folder = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
                let job: &'static str = Box::leak(format!("maildir_watcher:{}", folder.display()).into_boxed_str());
                let (intake, dir) = (&intake, &dir);
                leases
                    .run_led(job, shutdown, |stop| async move {
                        while !stop.is_cancelled() {
                            match ticket_mail::maildir::ingest(intake, dir).await {
                                Ok(report) if report.taken + report.failed > 0 => println!("{report}"),
                                Ok(_) => {}
                                Err(error) => tracing::warn!(%error, "the Maildir could not be read; trying again"),
                            }
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = tokio::time::sleep(std::time::Duration::from_secs(seconds.max(1))) => {}
                            }
                        }
                    })
                    .await;
                return Ok(());
            }
            loop {
                let report = ticket_mail::maildir::ingest(&intake, &dir).await?;
                if watch.is_none() || report.taken + report.failed > 0 {
                    println!("{report}");
                }
                let Some(seconds) = watch else { break };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(seconds.max(1))) => {}
                }
            }
        }
        Command::Contract { command } => {
            use ticket_domain::registry::{ContractTerms, RegistryCommand};
            use ticket_domain::vocabulary::ContractId;
            let registry = ticket_app::registry::RegistryService::new(store.clone(), Arc::new(SystemClock));
            let context = cli_context();
            let parse_id = |id: &str| {
                ContractId::parse(id).map_err(|e| anyhow::anyhow!("'{id}' is not a contract id: {}", e.problem))
            };
            let command = match command {
                ContractCommand::List => {
                    let registry = registry.load().await?;
                    for (id, contract) in &registry.contracts {
                        let line = serde_json::json!({
                            "id": id, "retired": contract.retired,
                            "is_default": registry.default_contract.as_ref() == Some(id), "terms": contract.terms,
                        });
                        println!("{line}");
                    }
                    return Ok(());
                }
                ContractCommand::Put { id, file } => {
                    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                    let terms: ContractTerms = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a contract's terms", file.display()))?;
                    RegistryCommand::SaveContract { contract_id: parse_id(&id)?, terms }
                }
                ContractCommand::Retire { id } => RegistryCommand::RetireContract { contract_id: parse_id(&id)? },
                ContractCommand::Default { id } => RegistryCommand::SetDefaultContract { contract_id: parse_id(&id)? },
            };
            let registry = registry.execute(command, &context).await?;
            println!("registry at version {}", registry.version);
        }
        Command::Division { command } => {
            use ticket_domain::registry::{DivisionTerms, RegistryCommand};
            let registry = ticket_app::registry::RegistryService::new(store.clone(), Arc::new(SystemClock));
            match command {
                DivisionCommand::List => {
                    for (id, terms) in &registry.load().await?.divisions {
                        println!("{}", serde_json::json!({ "id": id, "terms": terms }));
                    }
                }
                DivisionCommand::Put { id, name, email, answer_minutes } => {
                    let division_id = ticket_domain::vocabulary::DivisionId::parse(&id)
                        .map_err(|e| anyhow::anyhow!("'{id}' is not a division id: {}", e.problem))?;
                    let notification_email = ticket_domain::vocabulary::EmailAddress::parse(&email)
                        .map_err(|e| anyhow::anyhow!("--email: {}", e.problem))?;
                    let terms = DivisionTerms { name, notification_email, answer_minutes };
                    let registry =
                        registry.execute(RegistryCommand::SaveDivision { division_id, terms }, &cli_context()).await?;
                    println!("registry at version {}", registry.version);
                }
            }
        }
        Command::Staff { command } => {
            let registry = ticket_app::registry::RegistryService::new(store.clone(), Arc::new(SystemClock));
            staff_command(&registry, &opened.database, command).await?;
        }
        Command::Outbox { all, limit, retry } => {
            use ticket_mail::outbox;
            if let Some(id) = retry {
                anyhow::ensure!(outbox::retry_failed(&opened.database, &id).await?, "no failed mail has the id '{id}'");
                println!("mail {id} will be sent again");
                return Ok(());
            }
            let counts = outbox::counts(&opened.database).await?;
            let summary: Vec<String> = counts.iter().map(|(status, n)| format!("{status}: {n}")).collect();
            println!("outbox: {}", if summary.is_empty() { "empty".to_owned() } else { summary.join(", ") });
            for row in outbox::list(&opened.database, !all, limit).await? {
                let when = chrono::DateTime::from_timestamp_micros(row.sent_us.unwrap_or(row.created_us))
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                println!(
                    "{}  {when}  {:<8} {:<18} ticket {}  attempts {}  {}{}",
                    row.id,
                    row.status,
                    row.kind,
                    row.ticket_id,
                    row.attempts,
                    row.recipient.as_deref().unwrap_or("-"),
                    row.last_error.map(|e| format!("  ({e})")).unwrap_or_default()
                );
            }
        }
        Command::Rebuild { names, sla, page_events } => {
            let view = ticket_projections::ticket_view::TicketView::new(store.clone());
            let known = ["ticket_index", "ticket_view", "statistics", "stats_marks", "sla_clocks"];
            if names.iter().any(|n| n == ticket_projections::ledger::NAME) {
                anyhow::bail!(
                    "the ledger is never rebuilt: it is the witness of what was recorded (`ticketd verify` checks it)"
                );
            }
            if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
                anyhow::bail!("'{unknown}' is not a read model: {}", known.join(", "));
            }
            for name in known.into_iter().filter(|n| names.is_empty() || names.iter().any(|m| m == n)) {
                let started = std::time::Instant::now();
                let options = || ticket_projections::RebuildOptions {
                    page_events,
                    progress: Some(Box::new(move |applied| println!("{name}: {applied} events applied aside"))),
                };
                let applied = match name {
                    "ticket_index" => {
                        ticket_projections::rebuild_with(
                            &ticket_projections::TicketIndex::default(),
                            &store,
                            &opened.database,
                            options(),
                        )
                        .await?
                    }
                    "ticket_view" => {
                        ticket_projections::rebuild_with(&view, &store, &opened.database, options()).await?
                    }
                    "sla_clocks" => {
                        let registry =
                            Arc::new(ticket_app::registry::RegistryService::new(store.clone(), Arc::new(SystemClock)));
                        let clocks =
                            ticket_projections::sla_clocks::SlaClocks::new(store.clone(), registry, sla.calendar()?)
                                .with_statutory_days(sla.statutory_days())
                                .with_warn_percent(sla.sla_warn_percent);
                        ticket_projections::rebuild_with(&clocks, &store, &opened.database, options()).await?
                    }
                    "stats_marks" => {
                        let marks = ticket_projections::statistics::marks::StatsMarks::new(store.clone());
                        ticket_projections::rebuild_with(&marks, &store, &opened.database, options()).await?
                    }
                    _ => {
                        let statistics = ticket_projections::statistics::Statistics::new(store.clone());
                        ticket_projections::rebuild_with(&statistics, &store, &opened.database, options()).await?
                    }
                };
                let seconds = started.elapsed().as_secs_f64();
                println!(
                    "{name}: rebuilt from {applied} events in {seconds:.2} s ({:.0} events/s)",
                    applied as f64 / seconds.max(1e-9)
                );
            }
        }
        Command::Ledger { command } => match command {
            LedgerCommand::Checkpoint { ledger_key } => {
                let key = ticket_ledger::checkpoint::LedgerKey::read(&ledger_key)?;
                let (_, note) = ticket_projections::ledger::checkpoint_now(&opened.database, &key, clock.now()).await?;
                print!("{note}");
            }
            LedgerCommand::InitKey { .. } | LedgerCommand::PublicKey { .. } => unreachable!("run offline"),
        },
        Command::Verify { public_key, ledger_key, checkpoints } => {
            let public_key = match (public_key, ledger_key) {
                (Some(given), _) => Some(public_key_text(&given)?),
                (None, Some(path)) => Some(ticket_ledger::checkpoint::LedgerKey::read(&path)?.public_key().to_owned()),
                (None, None) => None,
            };
            let extra = checkpoints
                .iter()
                .map(|path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let started = std::time::Instant::now();
            let report =
                ticket_projections::ledger::verify(&raw, &opened.database, public_key.as_deref(), &extra, Some(&vault))
                    .await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "checked {} events against {} ledger leaves and {} signed checkpoints in {seconds:.2} s ({:.0} events/s)",
                report.events,
                report.leaves,
                report.checkpoints,
                report.events as f64 / seconds.max(1e-9)
            );
            if public_key.is_none() {
                println!("warning: no public key given: the checkpoints' signatures were not checked");
            }
            if report.not_yet_in_ledger > 0 {
                println!("{} events recorded after the ledger's last leaf (not in it yet)", report.not_yet_in_ledger);
            }
            if report.sealed_in_place > 0 {
                println!(
                    "{} events sealed in place by `ticketd migrate`, each as its PersonalDataSealed record lists (and, \
                     where the data key still exists, opening to the leaf recorded)",
                    report.sealed_in_place
                );
            }
            match report.findings.first() {
                None => println!(
                    "OK: every event is the one recorded, in its place, and the ledger matches every checkpoint"
                ),
                Some(first) => {
                    println!("FIRST: {first}");
                    for finding in report.findings.iter().skip(1).take(20) {
                        println!("also: {finding}");
                    }
                    anyhow::bail!("the log differs from the ledger: {} findings", report.findings.len());
                }
            }
        }
        Command::VerifyProof { .. } => unreachable!("run offline"),
        Command::Subjects { command: SubjectsCommand::Erase { email, phone, reason, reference, copies } } => {
            let service = Arc::new(TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
            let privacy = privacy_of(service.clone(), &opened.database, vault.clone(), &copies);
            let request = crate::privacy::Request {
                reason: ticket_domain::vocabulary::Reason::parse(&reason)
                    .map_err(|e| anyhow::anyhow!("--reason: {e}"))?,
                reference: ticket_domain::vocabulary::Reason::parse(&reference)
                    .map_err(|e| anyhow::anyhow!("--reference: {e}"))?,
            };
            let email = email.map(|e| e.trim().to_lowercase());
            let tickets =
                crate::http::subjects::tickets_of(&service, &opened.database, email.as_deref(), phone.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.internal.clone().unwrap_or(e.problem.detail)))?;
            for (ticket_id, _) in tickets {
                let outcome = privacy.erase_or_restrict(ticket_id, &request, &cli_context()).await?;
                println!("{}", serde_json::to_string(&outcome)?);
            }
        }
        Command::Retention { retention, copies } => {
            let service = Arc::new(TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default()));
            let privacy = privacy_of(service, &opened.database, vault.clone(), &copies);
            let context = ticket_app::CommandContext::new(ticket_domain::vocabulary::Actor::System {
                component: "retention".into(),
            });
            let erased = privacy.run_retention(&retention.policy()?, &context).await?;
            for outcome in &erased {
                println!("{}", serde_json::to_string(outcome)?);
            }
            eprintln!("retention: {} ticket(s) erased", erased.len());
        }
        Command::Keys { command: KeysCommand::Rotate { new_id } } => {
            if std::env::var("TICKETD_KEK").is_ok_and(|t| !t.trim().is_empty()) {
                anyhow::bail!("the keys come from TICKETD_KEK: rotate them where that is kept, with a key file here");
            }
            let id = new_id.unwrap_or_else(|| format!("kek-{}", chrono::Utc::now().format("%Y%m%d%H%M%S")));
            let old = ticket_vault::Keks::parse(&std::fs::read_to_string(&cli.kek_file)?)?;
            let rotated = old.with_new_current(&id)?;
            // The new key is in the file before any data key is wrapped under it, and the old
            // ones leave it only after every data key is re-wrapped.
            replace_secret(&cli.kek_file, &rotated.to_text())?;
            let vault =
                ticket_vault::Vault::new(opened.database.clone(), ticket_vault::Keks::parse(&rotated.to_text())?);
            let count = vault.rewrap_all().await?;
            // An old key a running instance wrapped new data keys under meanwhile stays (rotate
            // again once every instance has restarted with the new file).
            let in_use = vault.kek_ids_in_use().await?;
            let kept = rotated.retaining(&in_use);
            let others: Vec<&str> = kept.ids().skip(1).collect();
            replace_secret(&cli.kek_file, &kept.to_text())?;
            if others.is_empty() {
                println!("re-wrapped {count} data key(s) under {id}; {} now holds only it", cli.kek_file.display());
            } else {
                println!(
                    "re-wrapped {count} data key(s) under {id}; {others:?} still wrap keys made meanwhile (a running \
                     instance): restart every instance with the new file, then rotate again"
                );
            }
        }
        Command::Backup { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let head = ticket_projections::log_head(&opened.database).await?;
            match &opened.database {
                event_store::Database::Sqlite { read, .. } => {
                    let file = dir.join(format!("ticketd-{stamp}.db"));
                    anyhow::ensure!(!file.exists(), "{} exists already", file.display());
                    // One read transaction's snapshot, written as a compact database file.
                    sqlx::query("VACUUM INTO ?1")
                        .bind(file.display().to_string())
                        .execute(read)
                        .await
                        .with_context(|| format!("writing {}", file.display()))?;
                    println!("backup written: {}", file.display());
                }
                event_store::Database::Postgres(pool) => {
                    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
                    let file = dir.join(format!("ticketd-{stamp}.dump"));
                    anyhow::ensure!(!file.exists(), "{} exists already", file.display());
                    // The password goes by environment, never on the command line (`ps`).
                    let (url, password) = url_without_password(&cli.database_url);
                    let mut dump = std::process::Command::new("pg_dump");
                    dump.args(["--format=custom", "--no-owner", "--schema"])
                        .arg(format!("\"{}\"", schema.replace('"', "\"\"")))
                        .arg("--file")
                        .arg(&file)
                        .arg(format!("--dbname={url}"));
                    if let Some(password) = password {
                        dump.env("PGPASSWORD", password);
                    }
                    let dumped = dump
                        .status()
                        .context("running pg_dump (PostgreSQL's client tools, the server's version or newer)")?;
                    anyhow::ensure!(dumped.success(), "pg_dump failed ({dumped})");
                    // Checked: the archive reads back whole.
                    let listed = std::process::Command::new("pg_restore")
                        .arg("--list")
                        .arg(&file)
                        .output()
                        .context("running pg_restore --list")?;
                    anyhow::ensure!(
                        listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA"),
                        "the dump {} does not read back: {}",
                        file.display(),
                        String::from_utf8_lossy(&listed.stderr)
                    );
                    println!("backup written: {} (schema {schema})", file.display());
                }
            }
            println!("it holds the log up to position {head} at least; the key file is not in it: keep it apart");
        }
        Command::Migrate => {
            // Events written before sealing existed: their personal parts sealed, once.
            let service = TicketService::new(store.clone(), Arc::new(SystemClock), ServiceOptions::default());
            let sealed = crate::privacy::seal_clear_events(&raw, &service, &opened.database, &vault).await?;
            if sealed > 0 {
                println!("sealed the personal data of {sealed} event(s) stored in the clear (each recorded)");
            }
            println!("{} store at {} is migrated", store.backend(), cli.database_url);
        }
        Command::Token { command } => match command {
            TokenCommand::Create { role, name } => {
                let role = crate::auth::parse_role(&role).with_context(|| {
                    format!("'{role}' is not a role: agent, quality_manager, auditor, admin or intake")
                })?;
                let token = crate::auth::create_token(&opened.database, &name, role).await?;
                println!("{token}");
            }
            TokenCommand::List => {
                for (name, role, revoked) in crate::auth::list_tokens(&opened.database).await? {
                    println!("{name}\t{role}{}", if revoked { "\trevoked" } else { "" });
                }
            }
            TokenCommand::Revoke { name } => {
                if !crate::auth::revoke_token(&opened.database, &name).await? {
                    anyhow::bail!("no live token is named '{name}'");
                }
                println!("revoked {name}");
            }
        },
        Command::Replay { ticket, json, as_of } => {
            let ticket_id = match ticket.parse::<u64>().ok().and_then(|n| TicketNumber::new(n).ok()) {
                Some(number) => ticket_projections::ticket_by_number(&opened.database, number)
                    .await?
                    .with_context(|| format!("no ticket has the number {number}"))?,
                None => TicketId::from_uuid(
                    uuid::Uuid::parse_str(ticket.trim_start_matches(TicketId::STREAM_PREFIX))
                        .with_context(|| format!("'{ticket}' is neither a ticket id nor a ticket number"))?,
                ),
            };
            let service = TicketService::new(store, Arc::new(SystemClock), ServiceOptions::default());
            let mut history = service.history(ticket_id).await?;
            if let Some(instant) = as_of {
                history.retain(|record| record.occurred_at <= instant);
                anyhow::ensure!(!history.is_empty(), "ticket {ticket} had not been received at {instant}");
            }
            for record in &history {
                if json {
                    println!("{}", record_json(record));
                } else {
                    println!("{}", timeline_line(record));
                }
            }
        }
    }
    Ok(())
}

/// Who the command line acts as: an admin named after the operating-system user.
fn cli_context() -> ticket_app::CommandContext {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    ticket_app::CommandContext::new(ticket_domain::vocabulary::Actor::Staff {
        name: format!("cli:{user}"),
        role: ticket_domain::vocabulary::Role::Admin,
    })
}

fn record_json(record: &TicketRecord) -> serde_json::Value {
    let stored = ticket_domain::codec::encode(&record.event);
    serde_json::json!({
        "version": record.version,
        "position": record.position,
        "event_id": record.event_id,
        "event_type": stored.event_type,
        "schema_version": stored.schema_version,
        "occurred_at": record.occurred_at,
        "recorded_at": record.recorded_at,
        "actor": record.actor,
        "correlation_id": record.correlation_id,
        "causation_id": record.causation_id,
        "payload": stored.payload,
    })
}

fn timeline_line(record: &TicketRecord) -> String {
    use ticket_domain::vocabulary::Actor;
    let who = match &record.actor {
        Actor::Staff { name, role } => {
            format!("{name} ({})", serde_json::to_value(role).unwrap_or_default().as_str().unwrap_or("staff"))
        }
        Actor::Customer { .. } => "the customer".to_owned(),
        Actor::System { component } => format!("system ({component})"),
    };
    let mut payload = ticket_domain::codec::encode(&record.event).payload;
    if let Some(object) = payload.as_object_mut() {
        // The timeline shows facts; personal data stays in `--json` and the API.
        object.remove("personal");
    }
    format!(
        "v{:<3} {}  {:<20} by {}  {}",
        record.version,
        record.occurred_at.format("%Y-%m-%d %H:%M:%S UTC"),
        record.event.event_type(),
        who,
        payload
    )
}

/// Disables or enables a member of staff in the registry (nothing to change is fine).
async fn set_disabled(
    registry: &ticket_app::registry::RegistryService,
    name: &ticket_domain::vocabulary::StaffName,
    disabled: bool,
) -> anyhow::Result<()> {
    use ticket_domain::registry::{RegistryCommand, RegistryError};
    let mut terms = registry
        .load()
        .await?
        .staff
        .get(name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no member of staff is called {name}"))?;
    terms.disabled = disabled;
    match registry.execute(RegistryCommand::SaveStaff { name: name.clone(), terms }, &cli_context()).await {
        Ok(_) | Err(ticket_app::registry::RegistryFailure::Refused(RegistryError::NothingToChange)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// `ticketd staff …`: the staff directory (registry events) and console accounts' secrets.
async fn staff_command(
    registry: &ticket_app::registry::RegistryService,
    database: &event_store::Database,
    command: StaffCommand,
) -> anyhow::Result<()> {
    use ticket_domain::registry::{RegistryCommand, StaffTerms};
    use ticket_domain::vocabulary::{EmailAddress, Language, StaffName};
    let parse_name =
        |name: &str| StaffName::parse(name).map_err(|e| anyhow::anyhow!("'{name}' is not a staff name: {}", e.problem));
    let save = |name: StaffName, terms: StaffTerms| async move {
        match registry.execute(RegistryCommand::SaveStaff { name, terms }, &cli_context()).await {
            Ok(registry) => Ok(Some(registry.version)),
            Err(ticket_app::registry::RegistryFailure::Refused(
                ticket_domain::registry::RegistryError::NothingToChange,
            )) => Ok(None),
            Err(error) => Err(anyhow::Error::from(error)),
        }
    };
    match command {
        StaffCommand::List => {
            for (name, terms) in &registry.load().await?.staff {
                let credentials = crate::accounts::credentials(database, name.as_str()).await?;
                println!(
                    "{}",
                    serde_json::json!({
                        "name": name,
                        "terms": terms,
                        "password": credentials.is_some(),
                        "totp": credentials.as_ref().is_some_and(|(_, totp)| totp.is_some()),
                    })
                );
            }
        }
        StaffCommand::Put { name, email, role, display_name, language, password_stdin, password } => {
            let name = parse_name(&name)?;
            let current = registry.load().await?.staff.get(&name).cloned();
            let email = match (email, &current) {
                (Some(email), _) => {
                    EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("--email: {}", e.problem))?
                }
                (None, Some(current)) => current.email.clone(),
                (None, None) => anyhow::bail!("a new member of staff needs --email"),
            };
            let mut terms = current.clone().unwrap_or_else(|| StaffTerms::with_email(email.clone()));
            terms.email = email;
            if let Some(role) = role {
                let parsed =
                    crate::auth::parse_role(&role)
                        .filter(|r| *r != ticket_domain::vocabulary::Role::Intake)
                        .ok_or_else(|| anyhow::anyhow!("--role must be agent, quality_manager, auditor or admin"))?;
                terms.role = Some(parsed);
            }
            if let Some(shown) = display_name {
                terms.display_name = Some(shown);
            }
            if let Some(language) = language {
                terms.language = Some(match language.as_str() {
                    "hu" => Language::Hu,
                    "en" => Language::En,
                    _ => anyhow::bail!("--language must be hu or en"),
                });
            }
            let new_password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else if password || (terms.role.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdin())) {
                // A prompt that does not echo; Enter alone keeps the current password (if any).
                let has = crate::accounts::has_password(database, name.as_str()).await?;
                let hint = if has { " (Enter keeps the current one)" } else { "" };
                let first = rpassword::prompt_password(format!("new password for {name}{hint}: "))?;
                if first.is_empty() && has {
                    None
                } else {
                    let again = rpassword::prompt_password("again: ")?;
                    anyhow::ensure!(first == again, "the two passwords differ; nothing was changed");
                    Some(first)
                }
            } else {
                None
            };
            if let Some(password) = &new_password {
                crate::accounts::check_password(password)?;
            }
            match save(name.clone(), terms.clone()).await? {
                Some(version) => println!("{name} saved (registry at version {version})"),
                None => println!("{name}: the directory already says this"),
            }
            if let Some(password) = new_password {
                crate::accounts::set_password(database, name.as_str(), &password, chrono::Utc::now()).await?;
                println!("{name}: password set; their other sessions have ended");
            } else if terms.role.is_some() && !crate::accounts::has_password(database, name.as_str()).await? {
                println!("{name} has no password yet: set one with --password-stdin to let them sign in");
            }
        }
        StaffCommand::Disable { name } => {
            let name = parse_name(&name)?;
            set_disabled(registry, &name, true).await?;
            let ended = crate::accounts::end_sessions(database, name.as_str()).await?;
            println!("{name} is disabled ({ended} sessions ended)");
        }
        StaffCommand::Enable { name } => {
            let name = parse_name(&name)?;
            set_disabled(registry, &name, false).await?;
            println!("{name} is enabled");
        }
        StaffCommand::Totp { name, off } => {
            let name = parse_name(&name)?;
            if off {
                anyhow::ensure!(
                    crate::accounts::disable_totp(database, name.as_str()).await?,
                    "{name} has no password yet"
                );
                println!("{name}: second factor off");
            } else {
                let (url, secret) = crate::accounts::enable_totp(database, name.as_str())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("{name} has no password yet: set one first"))?;
                println!("{url}");
                eprintln!("{name}: second factor on (secret {secret}); their sessions have ended");
            }
        }
    }
    Ok(())
}

/// The key-encryption keys: from `TICKETD_KEK` (the file's text), else the key file — made
/// (mode 0600) when it does not exist and the database holds no data key yet.
async fn open_vault(
    database: &event_store::Database,
    kek_file: &std::path::Path,
) -> anyhow::Result<ticket_vault::Vault> {
    let keks = match std::env::var("TICKETD_KEK") {
        Ok(text) if !text.trim().is_empty() => {
            ticket_vault::Keks::parse(&text).context("reading the key-encryption keys from TICKETD_KEK")?
        }
        _ => match std::fs::read_to_string(kek_file) {
            Ok(text) => ticket_vault::Keks::parse(&text)
                .with_context(|| format!("reading the key-encryption keys from {}", kek_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !ticket_vault::Vault::is_empty(database).await? {
                    anyhow::bail!(
                        "the key file {} does not exist, but the database holds data keys wrapped by another: give \
                         --kek-file (or TICKETD_KEK) the file they were made with",
                        kek_file.display()
                    );
                }
                let keks = ticket_vault::Keks::generate(&format!("kek-{}", chrono::Utc::now().format("%Y%m%d")));
                match write_secret(kek_file, &keks.to_text()) {
                    Ok(()) => {
                        tracing::warn!(
                            path = %kek_file.display(),
                            "made a new key-encryption key; keep it safe and out of the database's backups"
                        );
                        keks
                    }
                    // Another process made it a moment ago: use theirs.
                    Err(_) if kek_file.exists() => ticket_vault::Keks::parse(&std::fs::read_to_string(kek_file)?)
                        .with_context(|| format!("reading the key-encryption keys from {}", kek_file.display()))?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", kek_file.display())),
        },
    };
    let vault = ticket_vault::Vault::new(database.clone(), keks);
    vault.check_keys().await?;
    Ok(vault)
}

/// Writes a secret file readable by its owner only (never over an existing file).
fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn privacy_of(
    service: Arc<TicketService>,
    database: &event_store::Database,
    vault: Arc<ticket_vault::Vault>,
    copies: &CopiesArgs,
) -> crate::privacy::Privacy {
    crate::privacy::Privacy {
        service,
        database: database.clone(),
        vault,
        attachments: ticket_app::attachments::AttachmentStore::new(
            copies.attachments_dir.clone(),
            ticket_app::attachments::ATTACHMENT_BYTES_MAX_DEFAULT,
            Vec::new(),
        ),
        outbox_dir: Some(copies.outbox_dir.clone()),
    }
}

/// Replaces a secret file whole (written aside, synced, renamed over it), keeping mode 0600.
fn replace_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let aside = path.with_extension("rotating");
    let _ = std::fs::remove_file(&aside);
    write_secret(&aside, text)?;
    std::fs::rename(&aside, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn a_database_urls_password_is_taken_out_and_decoded() {
        assert_eq!(
            super::url_without_password("postgres://ticketd:s%40cret@db:5432/tickets?options=-c%20x"),
            ("postgres://ticketd@db:5432/tickets?options=-c%20x".to_owned(), Some("s@cret".to_owned()))
        );
        assert_eq!(
            super::url_without_password("postgres://postgres@127.0.0.1:5432/test"),
            ("postgres://postgres@127.0.0.1:5432/test".to_owned(), None)
        );
        assert_eq!(
            super::url_without_password("postgres://u:p@h"),
            ("postgres://u@h".to_owned(), Some("p".to_owned()))
        );
    }
}
