//! The staff console (`/console`): agents work queues and tickets in a browser; admins keep
//! contracts, divisions, staff and canned replies. Server-rendered HTML (maud) with plain links
//! and forms, so everything works without JavaScript; `assets/console.js` only adds live
//! updates, partial swaps and shortcuts.
//!
//! - [`session`]: sign-in, sessions in cookies, the CSRF token and origin checks of every POST.
//! - [`queues`]: the queues with filters, sorting, paging, saved views, bulk actions.
//! - [`ticket`]: the ticket page, its timeline and the workflow's forms.
//! - [`intake`]: manual intake (phone, letter, other).
//! - [`insights`]: the quality dashboard: charts, tables and CSV over the statistics.
//! - [`drill`]: the dashboard's drill-down: the list of what one value counts.
//! - [`history`]: the replay view: a ticket's events, what each changed, the ticket at any
//!   instant, its proof; downloads for auditors.
//! - [`admin`]: contracts, divisions, staff accounts, canned replies.
//! - [`live`]: the Server-Sent Events stream (changed tickets, who has a ticket open).
//! - [`assets`]: the stylesheet and script, compiled in, under content-hashed names.
//!
//! Commands go through [`crate::commands`], the path the JSON API takes too: the same parsing
//! into domain commands, the same role check, `If-Match` (the version a page was rendered
//! from) and `Idempotency-Key` (one per rendered form, so a double submit applies once).

pub mod admin;
pub mod assets;
pub mod drill;
pub mod history;
pub mod insights;
pub mod intake;
pub mod labels;
pub mod live;
pub mod queues;
pub mod session;
pub mod ticket;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use ticket_domain::vocabulary::{Language, Role};

use crate::http::AppState;
use crate::pages::{lang_code, tr};
pub use session::{Console, Posted, StaffUser};

/// Every console route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/queues/all-open") }))
        .route("/console/", get(|| async { Redirect::to("/console/queues/all-open") }))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/language", post(session::set_language))
        .route("/console/counts", get(queues::counts))
        .route("/console/queues/{queue}", get(queues::page))
        .route("/console/queues/{queue}/rows/{number}", get(queues::row))
        .route("/console/queues/{queue}/bulk", post(queues::bulk))
        .route("/console/views", post(queues::save_view))
        .route("/console/views/delete", post(queues::delete_view))
        .route("/console/find", get(ticket::find))
        .route("/console/tickets/{number}", get(ticket::page))
        .route("/console/tickets/{number}/{action}", post(ticket::act))
        .route("/console/tickets/{number}/attachments/{sha256}", get(ticket::attachment))
        .route("/console/tickets/{number}/complaint-record", get(ticket::complaint_record))
        .route("/console/tickets/{number}/history", get(history::page))
        .route("/console/tickets/{number}/history/events.jsonl", get(history::download))
        .route("/console/tickets/{number}/history/events/{version}", get(history::event_json))
        .route("/console/tickets/{number}/history/proof.json", get(history::proof))
        .route("/console/audit/export", get(history::export))
        .route("/console/insights", get(insights::page))
        .route("/console/insights/{file}", get(insights::csv_download))
        .route("/console/insights/{figure}/tickets", get(drill::page))
        .route(
            "/console/new",
            get(intake::page).post(intake::submit).layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
        .route("/console/live", get(live::stream))
        .route("/console/admin", get(|| async { Redirect::to("/console/admin/staff") }))
        .route("/console/admin/staff", get(admin::staff_page).post(admin::staff_save))
        .route("/console/admin/divisions", get(admin::divisions_page).post(admin::division_save))
        .route("/console/admin/contracts", get(admin::contracts_page).post(admin::contract_save))
        .route("/console/admin/contracts/retire", post(admin::contract_retire))
        .route("/console/admin/replies", get(admin::replies_page).post(admin::reply_save))
        .route("/assets/{file}", get(assets::serve))
}

/// The console's Content-Security-Policy: nothing inline, nothing from elsewhere, no framing.
pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Security headers on every HTML page (console and public) and asset.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let is_page = path.starts_with("/console")
        || path.starts_with("/assets/")
        || path == "/contact"
        || path.starts_with("/survey/");
    if is_page {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Times as the desk reads them: Europe/Budapest.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Budapest).format("%Y-%m-%d %H:%M").to_string()
}

/// A duration in words: "3 d 4 h", "2 h 5 min", "12 min".
pub fn span(seconds: i64, language: Language) -> String {
    let seconds = seconds.abs();
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    let day = tr(language, "n", "d");
    let hour = tr(language, "ó", "h");
    let minute = tr(language, "p", "min");
    if days > 0 {
        format!("{days} {day} {hours} {hour}")
    } else if hours > 0 {
        format!("{hours} {hour} {minutes} {minute}")
    } else {
        format!("{minutes} {minute}")
    }
}

/// Which part of the navigation a page belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Queue(String),
    Ticket,
    New,
    Insights,
    Admin(&'static str),
}

/// A whole console page for a signed-in user, with the navigation and the shortcuts' list.
pub fn layout(
    user: &StaffUser,
    title: &str,
    section: &Section,
    counts: &Counts,
    data: PageData,
    content: Markup,
) -> Markup {
    let l = user.language;
    html! {
        (DOCTYPE)
        html lang=(lang_code(l)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ticketd" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("console.js")) defer {}
            }
            body data-live=[data.live] data-rows=[data.rows] data-ticket=[data.ticket] {
                a.skip href="#main" { (tr(l, "Ugrás a tartalomhoz", "Skip to content")) }
                header.top {
                    a.brand href="/console" { "ticketd" }
                    form method="get" action="/console/find" role="search" {
                        label.visually-hidden for="find" { (tr(l, "Jegy száma", "Ticket number")) }
                        input #find type="search" name="number" inputmode="numeric" placeholder=(tr(l, "Jegy száma", "Ticket number")) size="10";
                        " "
                        button.secondary type="submit" { (tr(l, "Megnyitás", "Open")) }
                    }
                    span.me {
                        (user.display_name) " (" (labels::role(user.caller.role, l)) ")"
                    }
                    form method="post" action="/console/language" {
                        input type="hidden" name="csrf" value=(user.csrf);
                        input type="hidden" name="language" value=(if l == Language::Hu { "en" } else { "hu" });
                        button.link type="submit" lang=(if l == Language::Hu { "en" } else { "hu" }) { (tr(l, "English", "Magyar")) }
                    }
                    form method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(user.csrf);
                        button.link type="submit" { (tr(l, "Kijelentkezés", "Sign out")) }
                    }
                }
                div.layout {
                    nav.side aria-label=(tr(l, "Sorok", "Queues")) {
                        h2 { (tr(l, "Sorok", "Queues")) }
                        ul {
                            @for (queue, count) in &counts.queues {
                                li {
                                    a href={"/console/queues/" (queue)} aria-current=[(section == &Section::Queue(queue.clone())).then_some("page")] {
                                        span { (labels::queue(queue, l)) }
                                        span.count data-count=(queue) aria-label={(count) " " (tr(l, "jegy", "tickets"))} { (count) }
                                    }
                                    @if queue == "escalated" && !counts.divisions.is_empty() {
                                        ul.divisions {
                                            @for (division, n) in &counts.divisions {
                                                li {
                                                    a href={"/console/queues/escalated?division=" (division)} {
                                                        span { (division) }
                                                        span.count data-count={"escalated:" (division)} aria-label={(n) " " (tr(l, "jegy", "tickets"))} { (n) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if crate::commands::may_command(&user.caller).is_ok() {
                            ul {
                                li { a href="/console/new" aria-current=[(section == &Section::New).then_some("page")] { (tr(l, "Új bejelentés rögzítése", "New report")) } }
                            }
                        }
                        @if matches!(user.caller.role, Role::QualityManager | Role::Auditor | Role::Admin) {
                            ul {
                                li { a #nav-insights href="/console/insights" aria-current=[(section == &Section::Insights).then_some("page")] { (tr(l, "Minőségügyi kimutatás", "Quality dashboard")) } }
                            }
                        }
                        @if user.caller.role == Role::Admin {
                            h2 { (tr(l, "Adminisztráció", "Administration")) }
                            ul {
                                @for (path, hu, en) in [("staff", "Munkatársak", "Staff"), ("divisions", "Szakterületek", "Divisions"), ("contracts", "Szerződések", "Contracts"), ("replies", "Sablon válaszok", "Canned replies")] {
                                    li { a href={"/console/admin/" (path)} aria-current=[(section == &Section::Admin(path)).then_some("page")] { (tr(l, hu, en)) } }
                                }
                            }
                        }
                        p.hint { (tr(l, "Billentyűk: ", "Keys: ")) kbd { "?" } }
                    }
                    main #main tabindex="-1" { (content) }
                }
                dialog #shortcuts aria-labelledby="shortcuts-title" {
                    h2 #shortcuts-title { (tr(l, "Billentyűparancsok", "Keyboard shortcuts")) }
                    table.plain {
                        tbody {
                            @for (key, hu, en) in [("j / k", "következő / előző sor", "next / previous row"), ("Enter", "a sor megnyitása", "open the row"), ("r", "válasz az ügyfélnek", "reply to the customer"), ("n", "belső jegyzet", "internal note"), ("a", "magamhoz veszem", "assign to me"), ("/", "keresés", "search"), ("?", "ez a lista", "this list")] {
                                tr { td { kbd { (key) } } td { (tr(l, hu, en)) } }
                            }
                        }
                    }
                    p.hint { (tr(l, "Szövegmezőben gépelés közben nem működnek.", "Inactive while typing in a field.")) }
                    button #shortcuts-close type="button" { (tr(l, "Bezárás", "Close")) }
                }
            }
        }
    }
}

/// What the script needs from a page (in `data-` attributes, never inline script).
#[derive(Debug, Default, Clone)]
pub struct PageData {
    /// The live stream's URL.
    pub live: Option<String>,
    /// For a queue: the page's own URL (its rows are fetched from it again).
    pub rows: Option<String>,
    /// For a ticket page: its number.
    pub ticket: Option<String>,
}

/// An HTML answer; console pages are never cached (they show personal data).
pub fn respond(status: axum::http::StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The navigation: each queue's count, and the escalated ones per division.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub queues: Vec<(String, i64)>,
    pub divisions: Vec<(String, i64)>,
}

/// The navigation's counts (the open tickets per status and the escalations per division
/// shared between pages while the read model stands still; the user's own counted each time,
/// by the assignee index).
pub async fn nav_counts(state: &AppState, user: &StaffUser) -> Counts {
    use ticket_projections::queues;
    // Counted again only when the read model has moved; the checkpoint is read first, so a
    // count stored under it never misses what it covers.
    let shared = async {
        let at = ticket_projections::checkpoint_of(&state.database, "ticket_view").await?.0;
        if let Some(counts) = state.console.cached_status_counts(at) {
            return Ok(counts);
        }
        // A restricted ticket is in no queue, so in no count (`restricted_open`).
        let restricted = queues::restricted_open(&state.database).await?;
        let counts = session::SharedCounts {
            by_status: queues::less(
                queues::status_counts(&state.database).await?,
                restricted.iter().map(|(status, _, _)| status.clone()),
            ),
            by_division: queues::less(
                queues::escalated_counts(&state.database).await?,
                restricted.iter().filter(|(status, _, _)| status == "escalated").filter_map(|(_, to, _)| to.clone()),
            ),
            restricted_assignees: restricted.into_iter().filter_map(|(_, _, assignee)| assignee).collect(),
        };
        state.console.store_status_counts(at, counts.clone());
        Ok::<_, event_store::StoreError>(counts)
    };
    let mine = queues::assigned_open(&state.database, &user.name);
    match (shared.await, mine.await) {
        (Ok(shared), Ok(mine)) => Counts {
            queues: queues::queue_counts(
                &shared.by_status,
                mine - shared.restricted_assignees.iter().filter(|a| **a == user.name.as_str()).count() as i64,
            )
            .into_iter()
            .map(|(queue, n)| {
                let name = queues::Queue::ALL.iter().find(|(_, q)| *q == queue).map(|(n, _)| *n).unwrap_or("");
                (name.to_owned(), n)
            })
            .collect(),
            divisions: shared.by_division,
        },
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "could not count the queues");
            Counts::default()
        }
    }
}

/// A page with one message for a signed-in user (403, 404, …).
pub async fn message(
    state: &AppState,
    user: &StaffUser,
    status: axum::http::StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let counts = nav_counts(state, user).await;
    respond(
        status,
        layout(
            user,
            title,
            &Section::Ticket,
            &counts,
            PageData::default(),
            html! {
                h1 { (title) }
                p role="alert" { (text) }
            },
        ),
    )
}
