//! The complaint record of §17/A: every field the law lists, the written answer with when it
//! was sent, and the mark of an answer after 30 days.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp, spawn_app_with};

async fn record(app: &TestApp, number: &str, lang: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(format!("{}/api/v1/tickets/{number}/complaint-record?lang={lang}", app.base))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The text of the element with this id (tags dropped).
fn field(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    let end = rest.find("</dd>").or_else(|| rest.find("</p>")).unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

pub async fn a_complaint_has_a_record_with_every_field_the_law_lists(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "files"), ("TICKETD_CLOCK_FILE", "{dir}/now")]).await
    else {
        return;
    };
    let set_clock = |now: &str| std::fs::write(app.dir().join("now"), now).unwrap();
    set_clock("2026-03-02T09:00:00Z");
    let created = app
        .create_ticket_with(json!({
            "channel": "phone",
            "reporter": {"name": "Kovács Anna", "email": "kovacs.anna@example.hu", "phone": "+36 30 123 4567"},
            "subject": "Kétszer számláztak",
            "message": "A márciusi számlát kétszer vonták le.",
            "category": "complaint",
            "service_area": "norma"
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let number = created.body["number"].to_string();
    let other = app.create_ticket().await;
    let (status, _) = record(&app, &other.body["number"].to_string(), "hu").await;
    assert_eq!(status, StatusCode::CONFLICT, "a ticket that never was a complaint has no record");

    let (status, html) = record(&app, &number, "en").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(field(&html, "name"), "Kovács Anna");
    assert!(field(&html, "address").contains("kovacs.anna@example.hu"), "{html}");
    assert!(field(&html, "address").contains("+36 30 123 4567"));
    assert!(field(&html, "time").starts_with("2026-03-02 10:00:00"), "Budapest time: {}", field(&html, "time"));
    assert_eq!(field(&html, "manner"), "orally, by phone");
    assert!(field(&html, "place").contains("customer service"));
    assert!(field(&html, "description").contains("Kétszer számláztak"));
    assert!(field(&html, "description").contains("A márciusi számlát kétszer vonták le."));
    assert_eq!(field(&html, "evidence"), "none");
    assert_eq!(field(&html, "recorder"), "kata", "the agent who took the phone call");
    assert!(field(&html, "identifier").starts_with(&format!("#{number}")));
    assert!(field(&html, "made").contains("recorded: 2026-03-02 10:00:00"));
    assert!(field(&html, "position").contains("not been answered yet"));
    assert!(!html.contains("id=\"late\""));
    assert!(html.contains("/assets/record."), "the print stylesheet");

    // Answered 31 days later, rejected with reasons: marked late, the answer's copy with its sending.
    for (action, body) in [
        ("acknowledge", json!({})),
        ("investigate", json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"})),
    ] {
        let done = app.act(&number, action, body).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    }
    set_clock("2026-04-02T09:00:00Z");
    let resolved = app
        .act(
            &number,
            "resolve",
            json!({"resolution": "Megvizsgáltuk a levonásokat.", "root_cause": "billing", "within_own_authority": true,
                   "complaint_outcome": "rejected", "rejection_reasons": "A második levonás az áprilisi előleg."}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let html = loop {
        let (_, html) = record(&app, &number, "hu").await;
        if html.contains("Elküldve: 2026") {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "the resolution mail was not sent: {html}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(html.contains("id=\"late\""), "answered after 30 days: {html}");
    assert!(field(&html, "position").contains("Elutasítva"), "{}", field(&html, "position"));
    assert_eq!(field(&html, "reasons"), "A második levonás az áprilisi előleg.");
    assert!(html.contains("Message-ID: <code>&lt;"), "the answer mail as sent: {html}");
    assert!(html.contains("Megvizsgáltuk a levonásokat."));
    assert!(html.contains("címzett: kovacs.anna@example.hu"), "{html}");
    assert_eq!(field(&html, "manner"), "szóban, telefonon");

    // Agents reach it from the console too; a stranger not at all.
    let anonymous =
        app.request(Method::GET, &format!("/api/v1/tickets/{number}/complaint-record"), None, &[], None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

/// The contact form links the privacy notice, as the policy's form does.
pub async fn the_contact_form_links_the_privacy_notice(backend: Backend) {
    let url = "https://ceg.example.hu/adatkezelesi-tajekoztato";
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off"), ("TICKETD_PRIVACY_NOTICE_URL", url)]).await
    else {
        return;
    };
    for lang in ["hu", "en"] {
        let page =
            app.client.get(format!("{}/contact?lang={lang}", app.base)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("<a href=\"{url}\">")), "{page}");
    }
    let without = crate::harness::spawn_app(backend).await.unwrap();
    let page = without.client.get(format!("{}/contact", without.base)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("id=\"privacy\""), "no link without a notice");
}

/// Right of access (GDPR Art. 15): everything held about one person — tickets, messages, the
/// replies and mails to them — and nothing of anyone else, also not of an address that merely
/// contains theirs.
pub async fn an_access_export_holds_one_persons_data_and_nobody_elses(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "files")]).await else { return };
    let report = |name: &str, email: Option<&str>, phone: Option<&str>, subject: &str, message: &str| {
        json!({"channel": "phone", "reporter": {"name": name, "email": email, "phone": phone},
               "subject": subject, "message": message})
    };
    let mut anna = Vec::new();
    for (subject, message) in [("Belépési hiba", "Nem tudok belépni."), ("Számla", "Kétszer fizettem.")] {
        let created =
            app.create_ticket_with(report("Kovács Anna", Some("Anna@Example.hu"), None, subject, message)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        anna.push(created.body["number"].to_string());
    }
    let hanna = report("Szabó Hanna", Some("hanna@example.hu"), None, "Hanna kérdése", "Hanna üzenete.");
    assert_eq!(app.create_ticket_with(hanna).await.status, StatusCode::CREATED);
    let bela = report("Nagy Béla", None, Some("+36 30 999 8888"), "Béla telefonált", "Béla üzenete.");
    assert_eq!(app.create_ticket_with(bela).await.status, StatusCode::CREATED);
    let replied = app.act(&anna[0], "replies", json!({"body": "Kedves Anna, megnéztük."})).await;
    assert_eq!(replied.status, StatusCode::OK, "{}", replied.body);

    let get = |query: &str, token: &str| {
        let path = format!("/api/v1/subjects/export?{query}");
        let token = token.to_owned();
        let app = &app;
        async move { app.request(Method::GET, &path, Some(&token), &[], None).await }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let export = loop {
        let export = get("email=anna%40example.hu", &app.admin).await;
        assert_eq!(export.status, StatusCode::OK, "{}", export.body);
        if export.body["tickets"].as_array().unwrap().len() == 2 {
            break export.body;
        }
        assert!(std::time::Instant::now() < deadline, "the queues did not show Anna's tickets: {}", export.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let numbers: Vec<String> = export["tickets"].as_array().unwrap().iter().map(|t| t["number"].to_string()).collect();
    assert_eq!(numbers, anna);
    let text = export.to_string();
    for hers in ["Kovács Anna", "Nem tudok belépni.", "Kétszer fizettem.", "Kedves Anna, megnéztük.", "Belépési hiba"]
    {
        assert!(text.contains(hers), "{hers} missing from {text}");
    }
    for theirs in ["hanna", "Hanna", "Béla", "999 8888", "kata"] {
        assert!(!text.contains(theirs), "{theirs} is not Anna's: {text}");
    }
    let first = &export["tickets"][0];
    assert_eq!(first["messages"][1]["by"], "company");
    assert!(first["steps"].as_array().unwrap().iter().any(|s| s["event_type"] == "AgentReplied"));

    let by_phone = get("phone=%2B36309998888", &app.admin).await;
    assert_eq!(by_phone.body["tickets"].as_array().unwrap().len(), 1, "{}", by_phone.body);
    assert_eq!(by_phone.body["tickets"][0]["reporter"]["name"], "Nagy Béla");
    let refused = get("email=anna%40example.hu", &app.agent).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let nobody = get("", &app.admin).await;
    assert_eq!((nobody.status, nobody.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
}
