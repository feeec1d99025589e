//! The contact form in a real browser: headless Chromium (Debian `chromium`), driven through
//! ChromeDriver (`chromium-driver`) over WebDriver. `.ci/run` installs both.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp, spawn_app_with};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Driver {
    child: Child,
    pub client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn browser() -> Driver {
    browser_with(true).await
}

/// A headless Chromium session; `javascript: false` turns scripts off for every page.
pub async fn browser_with(javascript: bool) -> Driver {
    for program in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(program).exists(),
            "{program} is missing: the browser test needs Debian's chromium and chromium-driver \
             (apt-get install -y chromium chromium-driver; .ci/run does this)"
        );
    }
    // The test binary links two TLS crypto providers (reqwest's and lettre's): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let prefs = if javascript { json!({}) } else { json!({"profile.managed_default_content_settings.javascript": 2}) };
    let capabilities = json!({
        "goog:chromeOptions": {
            "prefs": prefs,
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let capabilities = capabilities.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = String::new();
    for _ in 0..100 {
        match ClientBuilder::rustls().unwrap().capabilities(capabilities.clone()).connect(&url).await {
            Ok(client) => return Driver { child, client: Some(client), _profile: profile },
            Err(error) => last_error = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot start a Chromium session through chromedriver: {last_error}");
}

pub async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    if !text.is_empty() {
        field.send_keys(text).await.unwrap();
    }
}

pub async fn value(client: &Client, id: &str) -> String {
    client.find(Locator::Id(id)).await.unwrap().prop("value").await.unwrap().unwrap_or_default()
}

/// Submits the form and waits for the answer page to replace this one.
async fn submit(client: &Client) {
    let old_page = client.find(Locator::Css("html")).await.unwrap();
    client.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    for _ in 0..400 {
        // The old page's element goes stale once the new page has loaded.
        if old_page.attr("lang").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
}

pub async fn a_customer_reports_through_the_contact_form_in_a_browser(backend: Backend) {
    let Some(app) =
        spawn_app_with(backend, &[("TICKETD_MAIL", "files"), ("TICKETD_ATTACHMENT_MAX_BYTES", "2000")]).await
    else {
        return;
    };
    let mut driver = browser().await;
    let client = driver.client.take().unwrap();
    let outcome = std::panic::AssertUnwindSafe(walk_through_the_form(&app, &client));
    let result = futures::FutureExt::catch_unwind(outcome).await;
    let _ = client.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn walk_through_the_form(app: &TestApp, client: &Client) {
    // Hungarian by default, with every field labelled.
    client.goto(&format!("{}/contact", app.base)).await.unwrap();
    let html = client.source().await.unwrap();
    assert!(html.contains("lang=\"hu\"") && html.contains("Kapcsolatfelvétel"), "{html}");
    for id in ["name", "email", "subject", "message", "attachment"] {
        assert!(client.find(Locator::Css(&format!("label[for={id}]"))).await.is_ok(), "a label for {id}");
    }

    // English; a bad address and a missing subject: the errors sit by their fields, the text stays.
    client.goto(&format!("{}/contact?lang=en", app.base)).await.unwrap();
    fill(client, "name", "Nagy Zoltán").await;
    fill(client, "email", "zoltan-at-example").await;
    fill(client, "message", "The invoice of March lists the same licence twice.").await;
    submit(client).await;
    let email_error = client.find(Locator::Id("email-error")).await.expect("an error beside the e-mail field");
    assert!(email_error.text().await.unwrap().contains("valid e-mail address"));
    let subject_error = client.find(Locator::Id("subject-error")).await.expect("an error beside the subject");
    assert!(subject_error.text().await.unwrap().contains("required"));
    assert!(client.find(Locator::Id("name-error")).await.is_err(), "no error on a good field");
    assert_eq!(value(client, "name").await, "Nagy Zoltán", "the typed name is kept");
    assert_eq!(value(client, "message").await, "The invoice of March lists the same licence twice.");
    let email = client.find(Locator::Id("email")).await.unwrap();
    assert_eq!(email.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(email.attr("aria-describedby").await.unwrap().as_deref(), Some("email-error"));

    // A disallowed attachment is refused with what to do; the text is still kept.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("invoice.pdf.exe");
    std::fs::write(&program, b"MZ\x90\x00 not a document").unwrap();
    fill(client, "email", "zoltan@example.com").await;
    fill(client, "subject", "Double-billed licence").await;
    client.find(Locator::Id("attachment")).await.unwrap().send_keys(&program.display().to_string()).await.unwrap();
    submit(client).await;
    let attachment_error = client.find(Locator::Id("attachment-error")).await.expect("an error beside the attachment");
    assert!(attachment_error.text().await.unwrap().contains("cannot be attached"));
    assert_eq!(value(client, "subject").await, "Double-billed licence");

    // Fixed, with a real PDF: the customer sees their ticket number.
    let pdf = dir.path().join("invoice.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n% an invoice\n").unwrap();
    client.find(Locator::Id("attachment")).await.unwrap().send_keys(&pdf.display().to_string()).await.unwrap();
    submit(client).await;
    let number = client.find(Locator::Id("ticket-number")).await.expect("the ticket number is shown");
    let number = number.text().await.unwrap();
    assert!(number.parse::<u64>().is_ok(), "{number}");

    // The ticket: web form channel, the customer as actor, the PDF stored and served to agents only.
    // (By number: the number index follows the log within moments, so wait for it.)
    let ticket = crate::mail::ticket_until(app, &number, |t| t["channel"] == "web_form").await;
    assert_eq!(ticket["language"], "en");
    assert_eq!(ticket["reporter"]["email"], "zoltan@example.com");
    let attachment = &ticket["reporter"]["attachments"][0];
    assert_eq!(attachment["file_name"], "invoice.pdf");
    assert_eq!(attachment["media_type"], "application/pdf");
    let path = format!("/api/v1/tickets/{number}/attachments/{}", attachment["sha256"].as_str().unwrap());
    let download = app.client.get(format!("{}{path}", app.base)).bearer_auth(&app.agent).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"%PDF-1.4\n% an invoice\n");
    let refused = app.get(&path, &app.quality_manager).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let history = app.get(&format!("/api/v1/tickets/{number}/events"), &app.auditor).await;
    assert_eq!(history.body["events"][0]["actor"], json!({"kind": "customer", "channel": "web_form"}));

    // … and the confirmation mail went to the customer.
    let mails = crate::mail::wait_for_mails(&app.dir().join("outbox"), 1).await;
    assert_eq!(mails[0].to, "zoltan@example.com");
    assert!(mails[0].subject.starts_with(&format!("[#{number}]")));
}
