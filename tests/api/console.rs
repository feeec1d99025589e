//! The staff console over HTTP: sign-in, sessions, the CSRF token and origin checks, roles,
//! the sign-in rate limit and the security headers of every page. (The browser walks are in
//! `console_browser.rs`.)

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::harness::{Backend, TestApp, spawn_app_with};

pub const PASSWORD: &str = "correct horse battery staple";
pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `ticketd staff put NAME --email … --role ROLE --password-stdin` (the README's command).
pub fn put_staff(app: &TestApp, name: &str, role: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .args(["staff", "put", name, "--email", &format!("{name}@example.hu"), "--role", role, "--password-stdin"])
        .args(["--display-name", &display_name(name)])
        .env("TICKETD_DATABASE_URL", app.database_url())
        .env("TICKETD_KEK_FILE", app.kek_file())
        .env("TICKETD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ticketd staff put runs");
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "staff put failed: {}", String::from_utf8_lossy(&output.stderr));
}

pub fn display_name(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default() + " Teszt"
}

/// A browser-like client of the console: a session cookie, the page's CSRF token, our Origin.
pub struct Session {
    pub client: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub html: String,
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in through the form; the answer as it came (303 with a cookie on success).
pub async fn sign_in_answer(app: &TestApp, name: &str, password: &str, code: Option<&str>) -> reqwest::Response {
    let mut form = vec![("name", name.to_owned()), ("password", password.to_owned()), ("next", "/console".to_owned())];
    if let Some(code) = code {
        form.push(("code", code.to_owned()));
    }
    no_redirects()
        .post(format!("{}/console/login", app.base))
        .header("origin", &app.base)
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub fn session_cookie(answer: &reqwest::Response) -> Option<String> {
    answer
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("ticketd_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

pub async fn sign_in(app: &TestApp, name: &str) -> Session {
    let answer = sign_in_answer(app, name, PASSWORD, None).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{name} signs in");
    let cookie = session_cookie(&answer).expect("a session cookie");
    let mut session = Session { client: no_redirects(), base: app.base.clone(), cookie, csrf: String::new() };
    let page = session.get("/console/queues/all-open").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    session.csrf = hidden(&page.html, "csrf").expect("the page carries the CSRF token");
    session
}

/// The value of the first hidden field `name` in a page (after `after`, if given).
pub fn hidden(html: &str, name: &str) -> Option<String> {
    hidden_after(html, name, "")
}

pub fn hidden_after(html: &str, name: &str, after: &str) -> Option<String> {
    let start = html.find(after)?;
    let needle = format!("name=\"{name}\" value=\"");
    let at = html[start..].find(&needle)? + start + needle.len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl Session {
    pub async fn get(&self, path: &str) -> Page {
        let answer =
            self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap();
        Page { status: answer.status(), headers: answer.headers().clone(), html: answer.text().await.unwrap() }
    }

    /// A form POST as a browser sends it from our page (Origin ours, the session's CSRF token).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_raw(path, &form, &[("origin", self.base.as_str()), ("sec-fetch-site", "same-origin")]).await
    }

    pub async fn post_raw(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.post(format!("{}{path}", self.base)).header("cookie", &self.cookie).form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = request.send().await.unwrap();
        Page { status: answer.status(), headers: answer.headers().clone(), html: answer.text().await.unwrap() }
    }

    /// Runs a ticket page's form `action` with these fields, from the page as it is now.
    pub async fn act(&self, number: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(&format!("/console/tickets/{number}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let form = format!("action=\"/console/tickets/{number}/{action}\"");
        let version =
            hidden_after(&page.html, "version", &form).unwrap_or_else(|| panic!("no {action} form on {}", page.html));
        let key = hidden_after(&page.html, "idempotency_key", &form).unwrap();
        let mut all: Vec<(&str, &str)> = vec![("version", version.as_str()), ("idempotency_key", key.as_str())];
        all.extend_from_slice(fields);
        self.post(&format!("/console/tickets/{number}/{action}"), &all).await
    }
}

async fn events(app: &TestApp, number: &str) -> Vec<serde_json::Value> {
    let history = app.get(&format!("/api/v1/tickets/{number}/events"), &app.auditor).await;
    history.body["events"].as_array().cloned().unwrap_or_default()
}

async fn ticket_number(app: &TestApp) -> String {
    let created = app.create_ticket().await;
    assert_eq!(created.status, StatusCode::CREATED);
    created.body["number"].to_string()
}

/// Every console POST needs the session's CSRF token and our origin; a refused one appends
/// nothing. Events caused from the console carry the same actor as the API's.
pub async fn console_posts_need_the_csrf_token_and_our_origin(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    let kata = sign_in(&app, "kata").await;
    let number = ticket_number(&app).await;
    let before = events(&app, &number).await.len();
    let page = kata.get(&format!("/console/tickets/{number}")).await;
    let form = format!("action=\"/console/tickets/{number}/notes\"");
    let version = hidden_after(&page.html, "version", &form).unwrap();
    let key = hidden_after(&page.html, "idempotency_key", &form).unwrap();
    let note = [("version", version.as_str()), ("idempotency_key", key.as_str()), ("body", "Called back, no answer.")];
    let path = format!("/console/tickets/{number}/notes");
    let ours = [("origin", app.base.as_str())];

    // No token, a wrong token, another site's Origin, a cross-site fetch: 403, nothing appended.
    let refused = kata.post_raw(&path, &note, &ours).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "no CSRF token");
    let mut wrong = note.to_vec();
    wrong.push(("csrf", "not-the-token"));
    assert_eq!(kata.post_raw(&path, &wrong, &ours).await.status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let mut right = note.to_vec();
    right.push(("csrf", kata.csrf.as_str()));
    let evil = kata.post_raw(&path, &right, &[("origin", "https://evil.example")]).await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN, "another Origin");
    let cross = kata.post_raw(&path, &right, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "a cross-site request");
    assert_eq!(events(&app, &number).await.len(), before, "a refused POST appends nothing");

    // A GET never changes state: signing out is a POST, and a GET of it leaves the session.
    let get_logout = kata.get("/console/logout").await;
    assert_ne!(get_logout.status, StatusCode::SEE_OTHER);
    assert_eq!(kata.get("/console/queues/all-open").await.status, StatusCode::OK, "still signed in");

    // The real thing: 303 back to the ticket; the note's actor is kata the agent, as by the API.
    let done = kata.post(&path, &note).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let history = events(&app, &number).await;
    assert_eq!(history.len(), before + 1);
    let last = history.last().unwrap();
    assert_eq!(last["event_type"], "NoteAdded");
    assert_eq!(last["actor"], json!({"kind": "staff", "name": "kata", "role": "agent"}));
    // The same form sent twice (a double click, a reload) is applied once: its idempotency key.
    let again = kata.post(&path, &note).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(events(&app, &number).await.len(), before + 1, "a repeated form applies once");

    // A stale form (the ticket moved on since the page was rendered) is refused, the draft kept.
    let ack_form = format!("action=\"/console/tickets/{number}/acknowledge\"");
    let stale_version = hidden_after(&page.html, "version", &ack_form).unwrap();
    let stale = kata
        .post(
            &format!("/console/tickets/{number}/notes"),
            &[("version", stale_version.as_str()), ("idempotency_key", "fresh-1"), ("body", "My draft reply text")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.html.contains("My draft reply text"), "the draft is kept");
    assert!(stale.html.contains("id=\"changes\""), "what changed is shown");
    assert_eq!(events(&app, &number).await.len(), before + 1);

    // A refusal by the workflow is explained and changes nothing: resolving before the
    // investigation (a form from elsewhere, at the ticket's current version).
    let acknowledged = kata.act(&number, "acknowledge", &[]).await;
    assert_eq!(acknowledged.status, StatusCode::SEE_OTHER);
    let page = kata.get(&format!("/console/tickets/{number}")).await;
    assert!(!page.html.contains(&format!("action=\"/console/tickets/{number}/resolve\"")), "no resolve form now");
    let current = hidden_after(&page.html, "version", &form).unwrap();
    let count = events(&app, &number).await.len();
    let resolve = kata
        .post(
            &format!("/console/tickets/{number}/resolve"),
            &[
                ("version", current.as_str()),
                ("idempotency_key", "fresh-2"),
                ("resolution", "Refunded."),
                ("root_cause", "billing"),
                ("within_own_authority", "true"),
            ],
        )
        .await;
    assert_eq!(resolve.status, StatusCode::CONFLICT, "{}", resolve.html);
    assert!(resolve.html.contains("id=\"refusal\""), "the workflow's reason is shown");
    assert!(
        resolve.html.contains("a jegy állapota „Visszaigazolva”"),
        "in Hungarian, with where the ticket stands: {}",
        resolve.html
    );
    assert_eq!(events(&app, &number).await.len(), count, "a refusal appends nothing");
}

/// Sessions end when idle, after their absolute limit, on sign-out, on a password change and
/// when the account is disabled; cookies are HttpOnly and SameSite=Lax (Secure and `__Host-`
/// behind https).
pub async fn console_sessions_expire_and_end(backend: Backend) {
    let Some(app) = spawn_app_with(
        backend,
        &[
            ("TICKETD_MAIL", "off"),
            ("TICKETD_CLOCK_FILE", "{dir}/clock"),
            ("TICKETD_SESSION_IDLE_MINUTES", "60"),
            ("TICKETD_SESSION_MAX_HOURS", "2"),
        ],
    )
    .await
    else {
        return;
    };
    let clock = app.dir().join("clock");
    let set = |at: &str| std::fs::write(&clock, at).unwrap();
    set("2026-03-02T08:00:00Z");
    put_staff(&app, "kata", "agent", PASSWORD);
    let answer = sign_in_answer(&app, "kata", PASSWORD, None).await;
    let set_cookie = answer.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("ticketd_session="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "plain http: no Secure flag");
    let kata = sign_in(&app, "kata").await;
    let signed_in = |page: &Page| page.status == StatusCode::OK;
    let to_login = |page: &Page| {
        page.status == StatusCode::SEE_OTHER && page.headers["location"].to_str().unwrap().starts_with("/console/login")
    };
    // Active every 50 minutes: alive past the idle limit, until the absolute one.
    set("2026-03-02T08:50:00Z");
    assert!(signed_in(&kata.get("/console/queues/new").await));
    set("2026-03-02T09:40:00Z");
    assert!(signed_in(&kata.get("/console/queues/new").await));
    set("2026-03-02T10:01:00Z");
    assert!(to_login(&kata.get("/console/queues/new").await), "past the absolute limit");
    // Idle for more than an hour. (Signing in deletes every expired session: the unused one
    // from 08:00 is gone, only this one is left.)
    let kata = sign_in(&app, "kata").await;
    assert_eq!(app.query_count("SELECT COUNT(*) FROM console_sessions").await, 1);
    set("2026-03-02T11:02:00Z");
    assert!(to_login(&kata.get("/console/queues/new").await), "idle past the limit");
    // Sign-out ends it at once.
    let kata = sign_in(&app, "kata").await;
    let out = kata.post("/console/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert!(to_login(&kata.get("/console/queues/new").await), "signed out");
    // A new password ends every session of the account.
    let kata = sign_in(&app, "kata").await;
    put_staff(&app, "kata", "agent", "another long password");
    assert!(to_login(&kata.get("/console/queues/new").await), "the password changed");
    let old = sign_in_answer(&app, "kata", PASSWORD, None).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the old password no longer works");
    put_staff(&app, "kata", "agent", PASSWORD);
    // Disabling the account ends its sessions and its sign-ins.
    let kata = sign_in(&app, "kata").await;
    app.cli(&["staff", "disable", "kata"]);
    assert!(to_login(&kata.get("/console/queues/new").await), "disabled");
    let disabled = sign_in_answer(&app, "kata", PASSWORD, None).await;
    assert_eq!(disabled.status(), StatusCode::UNAUTHORIZED);
    let listed = app.cli(&["staff", "list"]);
    assert!(listed.contains("\"disabled\":true") && listed.contains("\"password\":true"), "{listed}");
}

/// Behind https the cookie is `__Host-` and `Secure`.
pub async fn behind_https_the_session_cookie_is_secure(backend: Backend) {
    let Some(app) =
        spawn_app_with(backend, &[("TICKETD_MAIL", "off"), ("TICKETD_PUBLIC_URL", "https://desk.example.hu")]).await
    else {
        return;
    };
    put_staff(&app, "kata", "agent", PASSWORD);
    let answer = sign_in_answer(&app, "kata", PASSWORD, None).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let set_cookie = answer.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-ticketd_session="), "{set_cookie}");
    assert!(
        set_cookie.contains("; Secure") && set_cookie.contains("Path=/") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    // The public origin is ours too.
    let cookie = session_cookie(&answer).unwrap();
    let session = Session { client: no_redirects(), base: app.base.clone(), cookie, csrf: String::new() };
    let page = session.get("/console/queues/all-open").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = hidden(&page.html, "csrf").unwrap();
    let from_public =
        session.post_raw("/console/logout", &[("csrf", &csrf)], &[("origin", "https://desk.example.hu")]).await;
    assert_eq!(from_public.status, StatusCode::SEE_OTHER);
}

/// Quality managers and auditors read: no command forms, and a 403 when they post one anyway.
pub async fn readers_get_no_command_forms_and_a_403_if_they_post(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "quinn", "quality_manager", PASSWORD);
    put_staff(&app, "audrey", "auditor", PASSWORD);
    let number = ticket_number(&app).await;
    let before = events(&app, &number).await.len();
    for name in ["quinn", "audrey"] {
        let reader = sign_in(&app, name).await;
        let page = reader.get(&format!("/console/tickets/{number}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.html.contains(&format!("action=\"/console/tickets/{number}/")), "{name} sees no command form");
        assert!(
            !reader.get("/console/queues/all-open").await.html.contains("id=\"bulk\""),
            "no bulk actions for {name}"
        );
        let posted = reader
            .post(
                &format!("/console/tickets/{number}/notes"),
                &[("version", "1"), ("idempotency_key", "k"), ("body", "hello")],
            )
            .await;
        assert_eq!(posted.status, StatusCode::FORBIDDEN, "{name} may not post");
        let intake = reader.get("/console/new").await;
        assert_eq!(intake.status, StatusCode::FORBIDDEN);
        let admin = reader.get("/console/admin/staff").await;
        assert_eq!(admin.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(events(&app, &number).await.len(), before);
}

/// Failed sign-ins are limited per account and per address; the message never says which of
/// name or password was wrong; the TOTP second factor is asked for when it is on.
pub async fn sign_in_is_rate_limited_and_says_nothing_about_which_part_was_wrong(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    put_staff(&app, "bela", "agent", PASSWORD);
    let text = |html: &str| html.split("role=\"alert\">").nth(1).map(|s| s.split('<').next().unwrap().to_owned());
    let wrong_password = sign_in_answer(&app, "kata", "wrong password!", None).await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = text(&wrong_password.text().await.unwrap());
    let unknown = sign_in_answer(&app, "nobody", PASSWORD, None).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        text(&unknown.text().await.unwrap()),
        wrong_password,
        "the same words for a wrong name and a wrong password"
    );
    // Five failures for kata: the sixth attempt is refused, even with the right password.
    for _ in 0..4 {
        assert_eq!(sign_in_answer(&app, "kata", "wrong password!", None).await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = sign_in_answer(&app, "kata", PASSWORD, None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    // Another account still signs in (the address has failures left).
    assert_eq!(sign_in_answer(&app, "bela", PASSWORD, None).await.status(), StatusCode::SEE_OTHER);
    // Twenty failures from one address: every account is refused from it.
    for i in 0..14 {
        assert_eq!(
            sign_in_answer(&app, &format!("guess{i}"), "x1234567890", None).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in_answer(&app, "bela", PASSWORD, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the address is limited"
    );

    // TOTP (RFC 6238) for a third account, on a fresh instance (this address is limited here).
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "zoli", "agent", PASSWORD);
    let url = app.cli(&["staff", "totp", "zoli"]);
    let totp = totp_rs::TOTP::from_url(url.trim()).expect("an otpauth:// URL");
    assert_eq!(
        sign_in_answer(&app, "zoli", PASSWORD, None).await.status(),
        StatusCode::UNAUTHORIZED,
        "the code is needed"
    );
    assert_eq!(sign_in_answer(&app, "zoli", PASSWORD, Some("000000")).await.status(), StatusCode::UNAUTHORIZED);
    let code = totp.generate_current().unwrap();
    assert_eq!(sign_in_answer(&app, "zoli", PASSWORD, Some(&code)).await.status(), StatusCode::SEE_OTHER);
}

/// Every console page (and the public ones) sends the strict CSP and the other security
/// headers, and holds no inline script or style; assets have content-hashed names and a
/// long-lived cache.
pub async fn every_page_sends_the_security_headers(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "root", "admin", PASSWORD);
    let number = ticket_number(&app).await;
    let admin = sign_in(&app, "root").await;
    let mut pages = vec![
        "/console/queues/all-open".to_owned(),
        "/console/queues/new?category=complaint&sort=due&dir=desc".to_owned(),
        "/console/queues/mine".to_owned(),
        format!("/console/tickets/{number}"),
        "/console/new".to_owned(),
        "/console/admin/staff".to_owned(),
        "/console/admin/divisions".to_owned(),
        "/console/admin/contracts".to_owned(),
        "/console/admin/replies".to_owned(),
    ];
    let mut assets = Vec::new();
    for path in &pages {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        check_headers(&page.headers, path);
        check_no_inline(&page.html, path);
        for asset in page.html.split("\"/assets/").skip(1).map(|s| s.split('"').next().unwrap().to_owned()) {
            assets.push(asset);
        }
    }
    assert!(assets.iter().any(|a| a.starts_with("console.") && a.ends_with(".css")));
    assert!(assets.iter().any(|a| a.starts_with("console.") && a.ends_with(".js")));
    for asset in &assets {
        let hash = asset.split('.').nth(1).unwrap();
        assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()), "a content-hashed name: {asset}");
        let answer = admin.get(&format!("/assets/{asset}")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["cache-control"], "public, max-age=31536000, immutable");
        check_headers(&answer.headers, asset);
    }
    // Pages before sign-in, and the public pages.
    pages.clear();
    let anonymous = no_redirects();
    for path in ["/console/login", "/contact", "/contact?lang=en"] {
        let answer = anonymous.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        check_headers(answer.headers(), path);
        check_no_inline(&answer.text().await.unwrap(), path);
    }
    // Not signed in: the console sends you to sign in, keeping where you were going.
    let answer = anonymous.get(format!("{}/console/tickets/{number}", app.base)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        answer.headers()["location"].to_str().unwrap(),
        format!("/console/login?next=/console/tickets/{number}")
    );
}

fn check_headers(headers: &header::HeaderMap, path: &str) {
    assert_eq!(headers.get("content-security-policy").and_then(|v| v.to_str().ok()), Some(CSP), "{path}");
    assert_eq!(headers.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"), "{path}");
    assert_eq!(headers.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("same-origin"), "{path}");
}

fn check_no_inline(html: &str, path: &str) {
    assert!(!html.contains("<style"), "no inline style element: {path}");
    assert!(!html.contains(" style="), "no style attribute: {path}");
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains("src="), "no inline script: {path}");
        assert!(script.split('>').nth(1).unwrap().starts_with("</script"), "an empty script element: {path}");
    }
    assert!(!html.contains(" onclick=") && !html.contains(" onload="), "no inline handlers: {path}");
    assert!(!html.contains("tkd_"), "no API token in a page: {path}");
}

/// Queue pages filter (text in any case and accent, category, period), sort, page, save views,
/// and apply bulk assign and priority — each refused row named, the rest applied.
pub async fn queues_filter_sort_save_views_and_act_in_bulk(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await else { return };
    put_staff(&app, "kata", "agent", PASSWORD);
    put_staff(&app, "bela", "agent", PASSWORD);
    let kata = sign_in(&app, "kata").await;
    let mut numbers = Vec::new();
    for (i, (name, subject, category)) in [
        ("Őri Árpád", "Számlázási hiba", "complaint"),
        ("Kiss Anna", "Jelszó nem működik", "user_support"),
        ("Nagy Éva", "Dupla terhelés", "complaint"),
    ]
    .iter()
    .enumerate()
    {
        let created = app
            .create_ticket_with(json!({
                "channel": "phone", "reporter": {"name": name, "email": format!("r{i}@example.hu")},
                "subject": subject, "message": "…", "category": category,
            }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        numbers.push(created.body["number"].to_string());
    }
    let rows_of = |html: &str| -> Vec<String> {
        html.split("<tr data-number=\"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect()
    };
    let wait_rows = |path: String, expected: usize| {
        let kata = &kata;
        async move {
            for _ in 0..200 {
                let page = kata.get(&path).await;
                if rows_of(&page.html).len() == expected {
                    return page;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("{path} never showed {expected} rows");
        }
    };
    // Once the read model shows all three: text in another case, with accents (the name).
    wait_rows("/console/queues/all-open".into(), 3).await;
    let page = kata.get("/console/queues/all-open?q=%C5%91RI").await;
    assert_eq!(rows_of(&page.html), vec![numbers[0].clone()]);
    // By the subject, by the address, by category; sorted by number descending.
    assert_eq!(rows_of(&kata.get("/console/queues/all-open?q=jelsz%C3%B3").await.html), vec![numbers[1].clone()]);
    assert_eq!(rows_of(&kata.get("/console/queues/all-open?q=r2%40example").await.html), vec![numbers[2].clone()]);
    let complaints = kata.get("/console/queues/new?category=complaint&sort=number&dir=desc").await;
    assert_eq!(rows_of(&complaints.html), vec![numbers[2].clone(), numbers[0].clone()]);
    // A bad filter value is said beside its field, not a crash.
    let bad = kata.get("/console/queues/all-open?category=nonsense&from=yesterday").await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.html.contains("id=\"filter-from-error\""), "the bad date is named");
    // A period: nothing was received before 2000.
    assert!(rows_of(&kata.get("/console/queues/all-open?to=2000-01-01").await.html).is_empty());
    // A saved view, listed for its owner only.
    let saved =
        kata.post("/console/views", &[("name", "Panaszok"), ("queue", "new"), ("query", "category=complaint")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(saved.headers["location"], "/console/queues/new?category=complaint");
    assert!(
        kata.get("/console/queues/all-open").await.html.contains("href=\"/console/queues/new?category=complaint\"")
    );
    let bela = sign_in(&app, "bela").await;
    assert!(!bela.get("/console/queues/all-open").await.html.contains("Panaszok"), "views are per user");

    // Bulk: assign the two complaints to bela and make them urgent.
    let page = kata.get("/console/queues/all-open").await;
    let key = crate::console::hidden_after(&page.html, "idempotency_key", "id=\"bulk\"").unwrap();
    let bulk = kata
        .post(
            "/console/queues/all-open/bulk",
            &[
                ("idempotency_key", key.as_str()),
                ("ticket", numbers[0].as_str()),
                ("ticket", numbers[2].as_str()),
                ("assignee", "bela"),
                ("priority", "urgent"),
                ("reason", "A vezetőség kérte"),
            ],
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK);
    assert!(bulk.html.contains("role=\"status\""), "{}", bulk.html);
    for number in [&numbers[0], &numbers[2]] {
        let ticket = app.get(&format!("/api/v1/tickets/{number}"), &app.auditor).await;
        assert_eq!(
            (ticket.body["assignee"].as_str(), ticket.body["priority"].as_str()),
            (Some("bela"), Some("urgent"))
        );
    }
    let untouched = app.get(&format!("/api/v1/tickets/{}", numbers[1]), &app.auditor).await;
    assert_eq!(untouched.body["assignee"], serde_json::Value::Null);
    // Escalated tickets are counted per division in the navigation.
    app.register_divisions(&["billing"]).await;
    let id = numbers[2].as_str();
    assert_eq!(app.act(id, "acknowledge", json!({})).await.status, StatusCode::OK);
    let investigate = json!({"category": "complaint", "service_area": "norma", "contact_method": "phone"});
    assert_eq!(app.act(id, "investigate", investigate).await.status, StatusCode::OK);
    let escalate = json!({"division": "billing", "reason": "Számlázási kérdés"});
    assert_eq!(app.act(id, "escalate", escalate).await.status, StatusCode::OK);
    let mut nav = String::new();
    for _ in 0..200 {
        nav = kata.get("/console/queues/escalated").await.html;
        if nav.contains("data-count=\"escalated:billing\" aria-label=\"1 ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(nav.contains("href=\"/console/queues/escalated?division=billing\""), "{nav}");
    assert!(nav.contains("data-count=\"escalated:billing\" aria-label=\"1 "), "one with billing");
    // The same bulk form sent again applies nothing twice.
    let events_before = app.get(&format!("/api/v1/tickets/{}/events", numbers[0]), &app.auditor).await.body["events"]
        .as_array()
        .unwrap()
        .len();
    let again = kata
        .post(
            "/console/queues/all-open/bulk",
            &[
                ("idempotency_key", key.as_str()),
                ("ticket", numbers[0].as_str()),
                ("assignee", "bela"),
                ("priority", "urgent"),
                ("reason", "A vezetőség kérte"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let events_after = app.get(&format!("/api/v1/tickets/{}/events", numbers[0]), &app.auditor).await.body["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(events_before, events_after);
    // An unknown assignee is refused and named; nothing applied.
    let refused = kata
        .post(
            "/console/queues/all-open/bulk",
            &[("idempotency_key", "other"), ("ticket", numbers[1].as_str()), ("assignee", "nobody")],
        )
        .await;
    assert!(refused.html.contains("role=\"alert\""), "{}", refused.html);
    let still = app.get(&format!("/api/v1/tickets/{}", numbers[1]), &app.auditor).await;
    assert_eq!(still.body["assignee"], serde_json::Value::Null);
    // Bela's own queue now holds them, and the navigation counts them.
    let mut bela_mine = bela.get("/console/queues/mine").await;
    for _ in 0..200 {
        if rows_of(&bela_mine.html).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        bela_mine = bela.get("/console/queues/mine").await;
    }
    assert_eq!(rows_of(&bela_mine.html).len(), 2);
    assert!(bela_mine.html.contains("data-count=\"mine\" aria-label=\"2 "), "the count of bela's own queue");
    assert!(rows_of(&kata.get("/console/queues/mine").await.html).is_empty(), "not kata's");
}

/// An idle service waits: its background work (projections, the live-update follower, the SLA
/// scheduler, the mailer) sleeps until something happens. (A follower that polled the store in
/// a loop once burned a core.)
pub async fn an_idle_service_does_not_busy_wait(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("TICKETD_MAIL", "files")]).await else { return };
    assert_eq!(app.create_ticket().await.status, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = app.cpu_time();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let used = app.cpu_time() - before;
    assert!(used < std::time::Duration::from_millis(400), "an idle server used {used:?} of CPU in 4 s");
}
