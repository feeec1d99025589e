//! Customer mail end to end: the real binary writes `.eml` files or talks to a real SMTP
//! server (`aiosmtpd`, from PyPI); the mails are read back with a MIME parser.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mail_parser::MessageParser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, spawn_app_with};

/// One mail as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub message_id: String,
    pub to: String,
    /// The first copy recipient's address, if any.
    pub cc: Option<String>,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub auto_submitted: Option<String>,
    pub language: Option<String>,
    pub body: String,
    /// The SMTP envelope's recipients (aiosmtpd adds `X-RcptTo`), when it went through SMTP.
    pub envelope_to: Option<String>,
}

pub fn parse_mail(bytes: &[u8]) -> Mail {
    let message = MessageParser::default().parse(bytes).expect("a MIME message");
    let bare = |id: &str| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
    Mail {
        message_id: bare(message.message_id().expect("a Message-ID")),
        to: message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned(),
        cc: message.cc().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_owned),
        subject: message.subject().unwrap_or_default().to_owned(),
        in_reply_to: message.in_reply_to().as_text().map(bare),
        auto_submitted: message.header_raw("Auto-Submitted").map(|v| v.trim().to_owned()),
        language: message.header_raw("Content-Language").map(|v| v.trim().to_owned()),
        body: message.body_text(0).unwrap_or_default().into_owned(),
        envelope_to: message.header_raw("X-RcptTo").map(|v| v.trim().to_owned()),
    }
}

/// Every mail in a folder of `.eml` files or a Maildir's `new/`.
pub fn mails_in(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut mails: Vec<Mail> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| parse_mail(&std::fs::read(&p).unwrap()))
        .collect();
    mails.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    mails
}

/// Polls until `mails_in(dir)` has `count` mails (or more), for up to 20 s.
pub async fn wait_for_mails(dir: &Path, count: usize) -> Vec<Mail> {
    for _ in 0..400 {
        let mails = mails_in(dir);
        if mails.len() >= count {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} mails in {}, found {:?}", dir.display(), mails_in(dir));
}

/// Polls the ticket until `done` holds.
pub async fn ticket_until(app: &TestApp, ticket: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut body = Value::Null;
    for _ in 0..400 {
        body = app.get(&format!("/api/v1/tickets/{ticket}"), &app.agent).await.body;
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ticket never got there: {body}");
}

async fn events(app: &TestApp, ticket: &str) -> Vec<Value> {
    let answer = app.get(&format!("/api/v1/tickets/{ticket}/events"), &app.auditor).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["events"].as_array().cloned().unwrap_or_else(|| answer.body.as_array().cloned().unwrap_or_default())
}

fn bare(id: &str) -> String {
    id.trim_start_matches('<').trim_end_matches('>').to_owned()
}

async fn create(app: &TestApp, name: &str, email: &str, language: &str) -> Value {
    let answer = app
        .request(
            Method::POST,
            "/api/v1/tickets",
            Some(&app.agent),
            &[],
            Some(json!({
                "channel": "phone",
                "language": language,
                "reporter": {"name": name, "email": email},
                "subject": "Számlázási hiba",
                "message": "A múlt havi számlám kétszer tartalmazza ugyanazt a tételt.",
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

pub async fn mail_confirms_replies_and_surveys_a_ticket_to_its_answer(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("TICKETD_MAIL", "files"),
            ("TICKETD_MAIL_FROM", "Ügyfélszolgálat <support@tickets.example>"),
            ("TICKETD_MAIL_AGENTS", "Agents <agents@tickets.example>"),
        ],
    )
    .await
    else {
        return;
    };
    let outbox = app.dir().join("outbox");
    let ticket = create(&app, "Ann Smith", "ann@example.com", "en").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let number = ticket["number"].as_u64().unwrap();

    // The confirmation goes out, and the ticket is acknowledged with its Message-ID.
    let acknowledged = ticket_until(&app, &id, |t| t["status"] == "acknowledged").await;
    assert_eq!(acknowledged["version"], 2);
    let history = events(&app, &id).await;
    let ack = history.iter().find(|e| e["event_type"] == "Acknowledged").expect("an Acknowledged event");
    assert_eq!(ack["actor"], json!({"kind": "system", "component": "mailer"}));
    let confirmation_id = bare(ack["payload"]["message_id"].as_str().expect("the confirmation's Message-ID"));
    let mails = wait_for_mails(&outbox, 2).await;
    let confirmation = mails.iter().find(|m| m.message_id == confirmation_id).expect("the confirmation mail");
    assert_eq!(confirmation.to, "ann@example.com");
    assert!(confirmation.subject.starts_with(&format!("[#{number}] We have received your report")), "{confirmation:?}");
    assert_eq!(confirmation.language.as_deref(), Some("en"));
    assert_eq!(confirmation.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(confirmation.body.contains("Dear Ann Smith,") && confirmation.body.contains(&number.to_string()));
    assert!(confirmation_id.ends_with("@tickets.example"), "{confirmation_id}");
    let notification = mails.iter().find(|m| m.to == "agents@tickets.example").expect("the agents' notification");
    assert!(notification.subject.starts_with(&format!("[#{number}] Új bejelentés")), "{notification:?}");

    // The agent's reply and the resolution go to the customer in the same thread.
    let answer = app
        .act(&id, "investigate", json!({"category": "bug_report", "service_area": "norma", "contact_method": "email"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Escalated to a division the registry knows: the division is told by mail.
    let division = json!({"name": "Számlázás", "notification_email": "billing@tickets.example"});
    let saved = app.request(Method::PUT, "/api/v1/divisions/billing", Some(&app.admin), &[], Some(division)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    app.act(
        &id,
        "escalate",
        json!({"division": "billing", "reason": "A duplicate licence line on the March invoice."}),
    )
    .await;
    let answered = app.act(&id, "escalation-answer", json!({"outcome": "Credit note issued."})).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.body);
    let refused = app
        .act(&id, "resolve", json!({"resolution": "x", "root_cause": "billing", "within_own_authority": false}))
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "outcome_not_informed"), "{}", refused.body);
    app.act(&id, "replies", json!({"body": "We are looking into the duplicate line."})).await;
    let answer = app
        .act(&id, "resolve", json!({"resolution": "The duplicate line was credited.", "root_cause": "billing", "within_own_authority": true}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let mails = wait_for_mails(&outbox, 5).await;
    let escalation = mails.iter().find(|m| m.to == "billing@tickets.example").expect("the division's mail");
    assert!(escalation.subject.starts_with(&format!("[#{number}] Eszkalált bejelentés (Számlázás)")), "{escalation:?}");
    assert!(escalation.body.contains("A duplicate licence line"), "{}", escalation.body);
    let reply = mails.iter().find(|m| m.body.contains("duplicate line.")).expect("the reply mail");
    assert_eq!(reply.to, "ann@example.com");
    assert_eq!(reply.auto_submitted, None, "a person's reply is not auto-submitted");
    assert_eq!(reply.in_reply_to.as_deref(), Some(confirmation_id.as_str()), "threaded on the confirmation");
    let resolution = mails.iter().find(|m| m.body.contains("was credited")).expect("the resolution mail");
    assert!(resolution.subject.starts_with(&format!("[#{number}] Your report has been resolved")));

    // Closing sends the survey; its link records one answer, once.
    let answer = app.act(&id, "close", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let surveyed = ticket_until(&app, &id, |t| t["survey"] == "sent").await;
    let history = events(&app, &id).await;
    let sent = history.iter().find(|e| e["event_type"] == "SurveySent").expect("SurveySent");
    let survey_id = bare(sent["payload"]["message_id"].as_str().unwrap());
    let mails = wait_for_mails(&outbox, 6).await;
    let survey = mails.iter().find(|m| m.message_id == survey_id).expect("the survey mail");
    let link = survey.body.split_whitespace().find(|w| w.contains("/survey/")).expect("a survey link").to_owned();
    assert!(link.starts_with(&app.base), "{link}");
    assert_eq!(surveyed["status"], "closed");

    let client = reqwest::Client::new();
    let page = client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("lang=\"en\"") && html.contains("Satisfaction survey") && html.contains(&number.to_string()));
    let invalid = client.post(&link).form(&[("score", "6"), ("comment", "kept text")]).send().await.unwrap();
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = invalid.text().await.unwrap();
    assert!(html.contains("Choose a value from 1 to 5") && html.contains("kept text"), "{html}");
    let answered = client.post(&link).form(&[("score", "4"), ("comment", "Quick and kind.")]).send().await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let again = client.post(&link).form(&[("score", "1")]).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT, "a survey link works once");
    let forged = client.get(format!("{}/survey/not-a-real-token", app.base)).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    let history = events(&app, &id).await;
    let answers: Vec<_> = history.iter().filter(|e| e["event_type"] == "SurveyAnswered").collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["payload"]["score"], 4);
    assert_eq!(answers[0]["actor"]["kind"], "customer");

    // … and the statistics count it.
    let row = crate::summary_until(&app, |row| row["surveys_answered"] == 1).await;
    assert_eq!(row["surveys_sent"], 1);
    assert_eq!(row["survey_mean_score"], 4.0);

    // The outbox has nothing left to do; nothing was sent twice.
    let status = app.cli(&["outbox", "--all"]);
    assert!(status.starts_with("outbox: done: 6\n"), "{status}");
    let mails = mails_in(&outbox);
    assert_eq!(mails.len(), 6);
}

/// `python -m aiosmtpd` on a port, delivering into a Maildir.
struct SmtpServer {
    child: Option<Child>,
    port: u16,
    maildir: PathBuf,
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("TICKETD_TEST_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ci-venv/bin/python");
    assert!(
        venv.exists(),
        "the SMTP tests need aiosmtpd (PyPI): python3 -m venv target/ci-venv && target/ci-venv/bin/pip install aiosmtpd \
         (.ci/run does this), or set TICKETD_TEST_PYTHON to a Python that has it"
    );
    venv
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> Self {
        let mut server = Self { child: None, port, maildir: maildir.to_owned() };
        server.resume();
        server
    }

    fn resume(&mut self) {
        let child = Command::new(python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        self.child = Some(child);
        // Ready when it accepts connections.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("aiosmtpd did not start on port {}", self.port);
    }

    fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.pause();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn mail_through_a_real_smtp_server_is_neither_lost_nor_doubled_while_it_is_away(backend: Backend) {
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let Some(mut app) = spawn_app_with(
        backend,
        &[
            ("TICKETD_MAIL", "smtp"),
            ("TICKETD_SMTP_URL", &smtp_url),
            ("TICKETD_MAIL_FROM", "Support <support@tickets.example>"),
            ("TICKETD_MAIL_RETRY_BASE_MS", "100"),
            ("TICKETD_MAIL_RETRY_MAX_S", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let maildir = app.dir().join("smtp-received");
    let mut smtp = SmtpServer::start(port, &maildir);
    let received = maildir.join("new");

    let first = create(&app, "Kovács Éva", "eva@example.hu", "hu").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let mails = wait_for_mails(&received, 1).await;
    let mail = &mails[0];
    assert_eq!(mail.envelope_to.as_deref(), Some("eva@example.hu"), "the envelope names the reporter");
    assert_eq!(mail.to, "eva@example.hu");
    assert!(mail.subject.starts_with(&format!("[#{}] Megkaptuk", first["number"])), "{mail:?}");
    assert_eq!(mail.language.as_deref(), Some("hu"));
    assert!(mail.body.contains("Tisztelt Kovács Éva!"), "accents survive the encoding: {}", mail.body);
    let acknowledged = ticket_until(&app, &first_id, |t| t["status"] == "acknowledged").await;
    assert_eq!(acknowledged["version"], 2);

    // The server goes away; tickets keep coming, and one restart of ours happens meanwhile.
    smtp.pause();
    let mut waiting = Vec::new();
    for i in 0..3 {
        waiting.push(create(&app, &format!("Ügyfél {i}"), &format!("customer{i}@example.hu"), "hu").await);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = app.cli(&["outbox"]);
    assert!(status.contains("pending: 3"), "three confirmations wait: {status}");
    assert!(status.contains("attempts "), "{status}");
    assert!(!status.contains("attempts 0"), "each was tried and failed: {status}");
    for ticket in &waiting {
        let now = app.get(&format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap()), &app.agent).await;
        assert_eq!(now.body["status"], "received", "not acknowledged before the mail went out");
    }
    app.stop();
    app.start();
    smtp.resume();

    let mails = wait_for_mails(&received, 4).await;
    for ticket in &waiting {
        ticket_until(&app, ticket["id"].as_str().unwrap(), |t| t["status"] == "acknowledged").await;
    }
    // Settle, then count: every mail exactly once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails_after = mails_in(&received);
    assert_eq!(mails_after.len(), 4, "nothing sent twice: {mails:?}");
    let mut ids: Vec<_> = mails_after.iter().map(|m| m.message_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let recipients: std::collections::BTreeSet<_> = mails_after.iter().map(|m| m.to.clone()).collect();
    let expected: std::collections::BTreeSet<_> =
        ["eva@example.hu", "customer0@example.hu", "customer1@example.hu", "customer2@example.hu"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(recipients, expected);
    let status = app.cli(&["outbox"]);
    assert_eq!(status.trim(), "outbox: done: 4", "{status}");
}
