//! The staff console in headless Chromium: an agent works a phone report from intake to closed
//! through the forms alone (with JavaScript and without), two agents on one ticket, a queue
//! that updates live, the shortcuts, and axe-core on every page. Screenshots of the pages go
//! to `target/console-screenshots/` for people to look at.

use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Driver, browser_with, fill, value};
use crate::console::{PASSWORD, display_name, put_staff};
use crate::harness::{Backend, TestApp, spawn_app_with};

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Runs a walk with a browser, closing the browser also when the walk fails.
pub(crate) async fn with_browser<F, Fut>(javascript: bool, walk: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut driver: Driver = browser_with(javascript).await;
    let client = driver.client.take().unwrap();
    // A desk's screen, for the screenshots.
    client.set_window_size(1440, 1000).await.unwrap();
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(walk(client.clone()))).await;
    let _ = client.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// axe-core (the npm package; `.ci/run` installs it) on the page: no serious or critical
/// violation.
pub(crate) async fn axe(client: &Client, page: &str) {
    let path = std::env::var("TICKETD_TEST_AXE_JS").unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/ci-node/node_modules/axe-core/axe.min.js")
            .display()
            .to_string()
    });
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core is missing at {path} ({e}): npm install --prefix target/ci-node axe-core (.ci/run does this)")
    });
    client.execute(&format!("{source}\n;return true;"), vec![]).await.unwrap();
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
             .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    let violations: Vec<Value> = found.as_array().cloned().unwrap_or_default();
    assert!(violations.is_empty(), "axe-core on {page}: {violations:#?}");
}

/// Clicks a submit button and waits for the next page.
pub(crate) async fn click_and_wait(client: &Client, css: &str) {
    let old = client.find(Locator::Css("html")).await.unwrap();
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    for _ in 0..400 {
        if old.attr("lang").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
}

async fn open_action(client: &Client, action: &str) {
    let details =
        client.find(Locator::Id(&format!("action-{action}"))).await.unwrap_or_else(|_| panic!("the {action} form"));
    if details.attr("open").await.unwrap().is_none() {
        client.find(Locator::Css(&format!("#action-{action} summary"))).await.unwrap().click().await.unwrap();
    }
}

async fn submit_action(client: &Client, action: &str) {
    click_and_wait(client, &format!("#action-{action} form.stack button[type=submit]")).await;
}

pub(crate) async fn select(client: &Client, id: &str, value: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("{id}={value}: {e}"));
}

pub(crate) async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

/// The text of an element, or nothing while the page is between two loads.
async fn try_text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub(crate) async fn sign_in(client: &Client, app: &TestApp, name: &str) {
    client.goto(&format!("{}/console", app.base)).await.unwrap();
    assert!(client.current_url().await.unwrap().path().ends_with("/console/login"), "sent to sign in");
    fill(client, "name", name).await;
    fill(client, "password", PASSWORD).await;
    click_and_wait(client, "form button[type=submit]").await;
    assert!(client.current_url().await.unwrap().path().starts_with("/console/queues/"), "signed in");
}

async fn status(app: &TestApp, number: &str) -> String {
    let ticket = app.get(&format!("/api/v1/tickets/{number}"), &app.auditor).await;
    ticket.body["status"].as_str().unwrap_or_default().to_owned()
}

/// The newcomer's walk: sign in, a phone report entered, worked to closed through the forms.
async fn phone_report_to_closed(app: &TestApp, client: &Client, javascript: bool, shots: &str) {
    sign_in(client, app, "kata").await;
    if javascript {
        axe(client, "queue (empty)").await;
    }
    client.goto(&format!("{}/console/new", app.base)).await.unwrap();
    select(client, "new-channel", "phone").await;
    fill(client, "new-name", "Nagy Éva").await;
    fill(client, "new-phone", "+36 1 234 5678").await;
    fill(client, "new-subject", "Kétszer terhelték a számlát").await;
    fill(client, "new-message", "A márciusi számlán kétszer szerepel a licenc.").await;
    select(client, "new-category", "complaint").await;
    if javascript {
        axe(client, "manual intake").await;
        screenshot(client, &format!("{shots}-intake")).await;
    }
    click_and_wait(client, "form.stack button[type=submit]").await;
    let path = client.current_url().await.unwrap().path().to_owned();
    let number = path.strip_prefix("/console/tickets/").expect("the new ticket's page").to_owned();
    assert_eq!(text(client, "#ticket-status").await, "Beérkezett");
    assert_eq!(status(app, &number).await, "received");
    let ticket = app.get(&format!("/api/v1/tickets/{number}"), &app.auditor).await;
    assert_eq!(ticket.body["channel"], "phone");
    assert_eq!(ticket.body["reporter"]["phone"], "+36 1 234 5678");

    // Acknowledge, investigate (complaint, Norma, by phone).
    open_action(client, "acknowledge").await;
    submit_action(client, "acknowledge").await;
    assert_eq!(text(client, "#ticket-status").await, "Visszaigazolva");
    open_action(client, "investigate").await;
    select(client, "investigate-category", "complaint").await;
    select(client, "investigate-service_area", "norma").await;
    select(client, "investigate-contact_method", "phone").await;
    submit_action(client, "investigate").await;
    assert_eq!(text(client, "#ticket-status").await, "Vizsgálat alatt");
    if javascript {
        axe(client, "ticket").await;
    }

    // A refusal explained beside its field, the draft kept: a rejection needs its reasons.
    open_action(client, "resolve").await;
    fill(client, "resolve-resolution", "A licencdíjat nem terheljük vissza.").await;
    fill(client, "resolve-root_cause", "duplicate-licence").await;
    select(client, "resolve-complaint_outcome", "rejected").await;
    submit_action(client, "resolve").await;
    let error = text(client, "#resolve-rejection_reasons-error").await;
    assert!(error.contains("indokot"), "said in Hungarian: {error}");
    assert_eq!(value(client, "resolve-resolution").await, "A licencdíjat nem terheljük vissza.", "the draft is kept");
    let field = client.find(Locator::Id("resolve-rejection_reasons")).await.unwrap();
    assert_eq!(field.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(status(app, &number).await, "investigating", "nothing was applied");
    if javascript {
        axe(client, "ticket with a refusal").await;
    }
    fill(client, "resolve-rejection_reasons", "A két tétel két külön licenc.").await;
    submit_action(client, "resolve").await;
    assert_eq!(text(client, "#ticket-status").await, "Megoldva");

    // Closed: the survey goes out.
    open_action(client, "close").await;
    submit_action(client, "close").await;
    assert_eq!(text(client, "#ticket-status").await, "Lezárva");
    assert_eq!(status(app, &number).await, "closed");
    let history = app.get(&format!("/api/v1/tickets/{number}/events"), &app.auditor).await;
    let types: Vec<&str> =
        history.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Received", "Acknowledged", "Investigated", "Resolved", "Closed"], "every step once");
    for event in history.body["events"].as_array().unwrap() {
        assert_eq!(event["actor"], json!({"kind": "staff", "name": "kata", "role": "agent"}));
    }
    if javascript {
        screenshot(client, &format!("{shots}-ticket")).await;
    }

    // The queue with some tickets in it.
    for _ in 0..3 {
        assert_eq!(app.create_ticket().await.status, StatusCode::CREATED);
    }
    client.goto(&format!("{}/console/queues/all-open", app.base)).await.unwrap();
    wait_for(client, "table.queue tbody tr[data-number]").await;
    if javascript {
        axe(client, "queue").await;
        screenshot(client, &format!("{shots}-queue")).await;
    }
    // Filters and sorting work by plain links and forms.
    client.goto(&format!("{}/console/queues/all-open?sort=number&dir=desc", app.base)).await.unwrap();
    let first = client
        .find(Locator::Css("table.queue tbody tr[data-number]"))
        .await
        .unwrap()
        .attr("data-number")
        .await
        .unwrap()
        .unwrap();
    let last: u64 = number.parse::<u64>().unwrap() + 3;
    assert_eq!(first, last.to_string(), "newest first");
}

async fn wait_for(client: &Client, css: &str) {
    for _ in 0..400 {
        if client.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{css} did not appear");
}

/// The admin pages: each with its form, an error beside its field, axe-core on each.
async fn admin_pages(app: &TestApp, client: &Client, shots: &str) {
    client.goto(&format!("{}/console/login", app.base)).await.unwrap();
    client.delete_all_cookies().await.unwrap();
    sign_in(client, app, "root").await;
    for page in ["staff", "divisions", "contracts", "replies"] {
        client.goto(&format!("{}/console/admin/{page}", app.base)).await.unwrap();
        axe(client, page).await;
        screenshot(client, &format!("{shots}-admin-{page}")).await;
    }
    client.goto(&format!("{}/console/admin/divisions", app.base)).await.unwrap();
    fill(client, "division-id", "billing").await;
    fill(client, "division-name", "Számlázás").await;
    fill(client, "division-email", "not-an-address").await;
    // The browser's own check would stop a bad address: send it anyway, as a script-less client could.
    client.execute("document.querySelector('#division-email').type = 'text'; return true;", vec![]).await.unwrap();
    click_and_wait(client, "form.stack button[type=submit]").await;
    assert!(client.find(Locator::Id("division-email-error")).await.is_ok(), "the error is beside its field");
    assert_eq!(value(client, "division-name").await, "Számlázás", "what was typed is kept");
    axe(client, "divisions with an error").await;
    fill(client, "division-email", "szamlazas@example.hu").await;
    click_and_wait(client, "form.stack button[type=submit]").await;
    assert!(client.source().await.unwrap().contains("szamlazas@example.hu"));
    let divisions = app.get("/api/v1/divisions", &app.admin).await;
    assert!(divisions.body.to_string().contains("billing"), "{}", divisions.body);
    // A canned reply, offered on the ticket page.
    client.goto(&format!("{}/console/admin/replies", app.base)).await.unwrap();
    fill(client, "reply-id", "thanks-hu").await;
    fill(client, "reply-title", "Köszönet").await;
    fill(client, "reply-body", "Köszönjük türelmét!").await;
    click_and_wait(client, "form.stack button[type=submit]").await;
    assert!(client.source().await.unwrap().contains("thanks-hu"));
}

pub async fn an_agent_works_a_phone_report_to_closed_in_the_browser(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "files")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    put_staff(&app, "root", "admin", PASSWORD);
    let shots = backend_name(backend);
    with_browser(true, |client| async move {
        phone_report_to_closed(&app, &client, true, shots).await;
        admin_pages(&app, &client, shots).await;
        // The sign-in page too.
        client.delete_all_cookies().await.unwrap();
        client.goto(&format!("{}/console/login", app.base)).await.unwrap();
        axe(&client, "sign-in").await;
        screenshot(&client, &format!("{shots}-sign-in")).await;
    })
    .await;
}

pub async fn the_console_works_without_javascript(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    with_browser(false, |client| async move {
        phone_report_to_closed(&app, &client, false, "nojs").await;
    })
    .await;
}

async fn press(client: &Client, key: char) {
    let actions =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    client.perform_actions(actions).await.unwrap();
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Two agents on one ticket: each sees the other there; the second one's reply after the
/// first one's change keeps the draft and shows the change. A ticket created through the API
/// appears in an open queue page without a reload. The shortcuts.
pub async fn two_agents_live_queues_and_shortcuts(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    put_staff(&app, "bela", "agent", PASSWORD);
    let created = app.create_ticket().await;
    let number = created.body["number"].to_string();
    let mut second: Driver = browser_with(true).await;
    let bela = second.client.take().unwrap();
    let app_ref = &app;
    let bela_ref = bela.clone();
    with_browser(true, |kata| async move {
        let app = app_ref;
        let bela = bela_ref;
        sign_in(&kata, app, "kata").await;
        sign_in(&bela, app, "bela").await;
        let ticket_url = format!("{}/console/tickets/{number}", app.base);
        kata.goto(&ticket_url).await.unwrap();
        bela.goto(&ticket_url).await.unwrap();
        // Each sees the other has it open (live, through the page's event stream).
        eventually("kata sees bela", || async { try_text(&kata, "#presence").await.contains(&display_name("bela")) })
            .await;
        eventually("bela sees kata", || async { try_text(&bela, "#presence").await.contains(&display_name("kata")) })
            .await;

        // Kata notes (the `n` shortcut opens the note form and puts the cursor in it).
        press(&kata, 'n').await;
        let focused = kata.active_element().await.unwrap().attr("id").await.unwrap();
        assert_eq!(focused.as_deref(), Some("notes-body"), "n puts the cursor in the note");
        kata.active_element().await.unwrap().send_keys("Visszahívtam, nem vette fel.").await.unwrap();
        submit_action(&kata, "notes").await;
        // Bela's page says the ticket changed, without touching his forms.
        eventually("bela is told", || async {
            bela.find(Locator::Id("live-change")).await.unwrap().is_displayed().await.unwrap_or(false)
        })
        .await;
        // Bela's reply, written on the page from before the note: kept, with what changed.
        press(&bela, 'r').await;
        let draft = "Tisztelt Ügyfelünk! A visszatérítést elindítottuk.";
        bela.active_element().await.unwrap().send_keys(draft).await.unwrap();
        submit_action(&bela, "replies").await;
        let changes = text(&bela, "#changes").await;
        assert!(changes.contains("Belső jegyzet") && changes.contains("Visszahívtam"), "{changes}");
        assert_eq!(value(&bela, "replies-body").await, draft, "the draft is kept");
        let events = app.get(&format!("/api/v1/tickets/{number}/events"), &app.auditor).await;
        assert_eq!(events.body["events"].as_array().unwrap().len(), 2, "the stale reply was not applied");
        // Sent again, now from the current version: recorded.
        submit_action(&bela, "replies").await;
        let events = app.get(&format!("/api/v1/tickets/{number}/events"), &app.auditor).await;
        let last = events.body["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["event_type"], "AgentReplied");
        assert_eq!(last["actor"]["name"], "bela");

        // Kata was told of Bela's reply too; she reloads, and `a` assigns the ticket to her.
        eventually("kata is told", || async {
            kata.find(Locator::Id("live-change")).await.unwrap().is_displayed().await.unwrap_or(false)
        })
        .await;
        kata.refresh().await.unwrap();
        press(&kata, 'a').await;
        eventually("assigned to kata", || async { try_text(&kata, "#ticket-assignee").await == display_name("kata") })
            .await;

        // A queue page follows new tickets without a reload.
        kata.goto(&format!("{}/console/queues/all-open", app.base)).await.unwrap();
        wait_for(&kata, "table.queue tbody tr[data-number]").await;
        kata.execute("window.__notReloaded = 42; return true;", vec![]).await.unwrap();
        let new = app.create_ticket().await;
        let new_number = new.body["number"].to_string();
        let row = format!("table.queue tbody tr[data-number='{new_number}']");
        eventually("the new ticket's row", || async { kata.find(Locator::Css(&row)).await.is_ok() }).await;
        let kept = kata.execute("return window.__notReloaded;", vec![]).await.unwrap();
        assert_eq!(kept, json!(42), "the page was not reloaded");
        // Two tickets are new now (the first was never acknowledged): the count follows.
        eventually("the navigation's count", || async { try_text(&kata, "[data-count='new']").await == "2" }).await;

        // Shortcuts: j/k move, / searches (and typing there is not a shortcut), ? lists them,
        // Enter opens.
        kata.find(Locator::Css("h1")).await.unwrap().click().await.unwrap();
        press(&kata, 'j').await;
        let first = kata.find(Locator::Css("table.queue tbody tr.current")).await.expect("j selects a row");
        let first_number = first.attr("data-number").await.unwrap().unwrap();
        press(&kata, 'j').await;
        press(&kata, 'k').await;
        let current = kata.find(Locator::Css("table.queue tbody tr.current")).await.unwrap();
        assert_eq!(current.attr("data-number").await.unwrap().unwrap(), first_number, "j then k comes back");
        press(&kata, '/').await;
        let focused = kata.active_element().await.unwrap().attr("id").await.unwrap();
        assert_eq!(focused.as_deref(), Some("filter-text"));
        press(&kata, 'j').await;
        assert_eq!(value(&kata, "filter-text").await, "j", "typing in a field is typing");
        let current = kata.find(Locator::Css("table.queue tbody tr.current")).await.unwrap();
        assert_eq!(current.attr("data-number").await.unwrap().unwrap(), first_number, "no move while typing");
        fill(&kata, "filter-text", "").await;
        kata.find(Locator::Css("h1")).await.unwrap().click().await.unwrap();
        press(&kata, '?').await;
        eventually("the shortcuts' list", || async {
            kata.find(Locator::Id("shortcuts")).await.unwrap().attr("open").await.unwrap().is_some()
        })
        .await;
        kata.find(Locator::Id("shortcuts-close")).await.unwrap().click().await.unwrap();
        press(&kata, 'j').await;
        press(&kata, '\u{E007}').await;
        eventually("Enter opens the row", || async {
            kata.current_url().await.unwrap().path().starts_with("/console/tickets/")
        })
        .await;
    })
    .await;
    let _ = bela.close().await;
}
