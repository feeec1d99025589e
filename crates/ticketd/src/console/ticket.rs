//! `/console/tickets/{number}`: the ticket — header, SLA clocks, one timeline of the
//! conversation and the history — and a form for each step the workflow allows now.
//!
//! Nothing typed is lost and nobody overwrites anybody: every form carries the version the page
//! was rendered from (sent as `If-Match`) and an idempotency key of its own. When the ticket
//! changed meanwhile, or the workflow refuses, the page comes back with the draft as typed, the
//! reason beside the form, and (for a change) what changed since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use ticket_app::TicketRecord;
use ticket_domain::TicketEvent;
use ticket_domain::vocabulary::{Actor, Language, Role};

use super::labels::{self, CATEGORIES, CONTACT_METHODS, OUTCOMES, PRIORITIES, SERVICE_AREAS};
use super::{PageData, Posted, Section, StaffUser, layout, local_time, nav_counts, respond};
use crate::commands::{self, Action, Answer, Fingerprint, Request};
use crate::http::AppState;
use crate::http::problem::{ApiError, Problem};
use crate::http::tickets::{TicketView, view};
use crate::pages::tr;
use crate::sql;

/// What the agent sent, when it comes back: the action, the fields as typed, the refusal.
#[derive(Debug, Default)]
pub struct Draft {
    pub action: String,
    pub values: HashMap<String, String>,
    pub problem: Option<Problem>,
    /// The version the refused form was rendered from (to list what changed since).
    pub from_version: Option<u64>,
    /// The language its errors are shown in.
    pub language: Language,
}

impl Draft {
    fn value<'a>(&'a self, action: &str, field: &str) -> Option<&'a str> {
        (self.action == action).then(|| self.values.get(field).map(String::as_str)).flatten()
    }
    fn field_error(&self, action: &str, field: &str) -> Option<String> {
        if self.action != action {
            return None;
        }
        let problem = self.problem.as_ref()?;
        problem.errors.as_ref()?.iter().find(|e| e.field == field).map(|e| labels::problem(&e.problem, self.language))
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct FindQuery {
    number: Option<String>,
}

/// `GET /console/find?number=N`: the header's "open ticket" box.
pub async fn find(Query(query): Query<FindQuery>) -> Response {
    let number: String = query.number.unwrap_or_default().chars().filter(|c| c.is_ascii_digit()).collect();
    if number.is_empty() {
        return Redirect::to("/console").into_response();
    }
    Redirect::to(&format!("/console/tickets/{number}")).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    /// Start the reply from this canned reply.
    canned: Option<String>,
    /// Narrow the canned replies offered.
    canned_q: Option<String>,
}

/// `GET /console/tickets/{number}`.
pub async fn page(
    State(state): State<AppState>,
    user: StaffUser,
    Path(number): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let mut draft = Draft { language: user.language, ..Draft::default() };
    if let Some(id) = query.canned.as_deref()
        && let Some((_, _, _, body)) = canned_replies(&state).await.into_iter().find(|r| r.0 == id)
    {
        draft.action = "replies".into();
        draft.values.insert("body".into(), body);
    }
    render(&state, &user, &number, draft, query.canned_q.as_deref(), StatusCode::OK).await
}

async fn canned_replies(state: &AppState) -> Vec<(String, String, String, String)> {
    sql::fetch(
        &state.database,
        "SELECT id, title, language, body FROM canned_replies WHERE retired = FALSE ORDER BY language, title",
        vec![],
    )
    .await
    .unwrap_or_default()
}

/// Root causes given before, most used first: offered by the resolve form. Read in the
/// background (it scans the log's resolutions) at most once a minute; a page never waits for
/// it and shows what the last reading found.
async fn root_causes(state: &AppState) -> Vec<String> {
    static CACHE: Mutex<Option<(Instant, Vec<String>)>> = Mutex::new(None);
    static READING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let (fresh, causes) = match CACHE.lock().expect("root causes lock").as_ref() {
        Some((at, causes)) => (at.elapsed() < Duration::from_secs(60), causes.clone()),
        None => (false, Vec::new()),
    };
    if !fresh && !READING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        let database = state.database.clone();
        tokio::spawn(async move {
            let sql = match &database {
                event_store::Database::Sqlite { .. } => {
                    "SELECT json_extract(payload, '$.root_cause') AS cause, COUNT(*) AS n FROM events \
                     WHERE event_type = 'Resolved' GROUP BY cause ORDER BY n DESC, cause LIMIT 200"
                }
                event_store::Database::Postgres(_) => {
                    "SELECT payload->>'root_cause' AS cause, COUNT(*) AS n FROM events \
                     WHERE event_type = 'Resolved' GROUP BY cause ORDER BY n DESC, cause LIMIT 200"
                }
            };
            match sql::fetch::<(Option<String>, i64)>(&database, sql, vec![]).await {
                Ok(rows) => {
                    let causes: Vec<String> = rows.into_iter().filter_map(|(c, _)| c).collect();
                    *CACHE.lock().expect("root causes lock") = Some((Instant::now(), causes));
                }
                Err(error) => tracing::warn!(%error, "reading the root causes used before"),
            }
            READING.store(false, std::sync::atomic::Ordering::Release);
        });
    }
    causes
}

fn actor_text(actor: &Actor, registry: &ticket_domain::registry::Registry, language: Language) -> String {
    match actor {
        Actor::Staff { name, role } => {
            let shown = ticket_domain::vocabulary::StaffName::parse(name)
                .ok()
                .and_then(|n| registry.staff.get(&n).map(|t| t.shown_name(&n).to_owned()))
                .unwrap_or_else(|| name.clone());
            format!("{shown} ({})", labels::role(*role, language))
        }
        Actor::Customer { .. } => tr(language, "az ügyfél", "the customer").to_owned(),
        Actor::System { component } => format!("{} ({component})", tr(language, "a rendszer", "the system")),
    }
}

fn delivery_text(status: &str, language: Language) -> &'static str {
    match status {
        "pending" => tr(language, "küldésre vár", "waiting to be sent"),
        "sent" | "done" => tr(language, "elküldve", "sent"),
        "failed" => tr(language, "nem kézbesíthető", "failed"),
        "skipped" => tr(language, "nincs cím, nem ment ki", "not sent: no address"),
        _ => tr(language, "ismeretlen", "unknown"),
    }
}

/// One entry of the timeline.
fn entry(
    number: u64,
    record: &TicketRecord,
    registry: &ticket_domain::registry::Registry,
    mails: &[ticket_mail::outbox::OutboxRow],
    language: Language,
    may_read_attachments: bool,
) -> Markup {
    let l = language;
    let stored = ticket_domain::codec::encode(&record.event);
    let who = actor_text(&record.actor, registry, l);
    let when = local_time(record.occurred_at);
    let meta = html! {
        span.meta { (labels::event_type(stored.event_type, l)) " · " (who) " · " time datetime=(record.occurred_at.to_rfc3339()) { (when) } " · v" (record.version) }
    };
    let attachments = |list: &[ticket_domain::vocabulary::AttachmentRef]| {
        html! {
            @if !list.is_empty() {
                ul {
                    @for a in list {
                        li {
                            @if may_read_attachments {
                                a href={"/console/tickets/" (number) "/attachments/" (a.sha256)} { (a.file_name) }
                            } @else { (a.file_name) }
                            " (" (a.media_type) ", " (a.size) " B)"
                        }
                    }
                }
            }
        }
    };
    match &record.event {
        TicketEvent::Received(received) => html! {
            li.customer id={"event-" (record.version)} {
                (meta)
                p { strong { (received.personal.subject) } }
                p.body { (received.personal.message) }
                (attachments(&received.personal.attachments))
            }
        },
        TicketEvent::CustomerReplied(replied) => html! {
            li.customer id={"event-" (record.version)} {
                (meta)
                p.body { (replied.personal.body) }
                (attachments(&replied.personal.attachments))
            }
        },
        TicketEvent::AgentReplied(replied) => {
            let mail = mails.iter().find(|m| m.event_id == record.event_id.to_string());
            html! {
                li.reply id={"event-" (record.version)} {
                    (meta)
                    p.body { (replied.personal.body) }
                    p.hint {
                        (tr(l, "Kézbesítés: ", "Delivery: "))
                        @match mail {
                            Some(mail) => { span data-delivery=(mail.status) { (delivery_text(&mail.status, l)) } @if let Some(e) = &mail.last_error { " — " (e) } }
                            None => { (tr(l, "még nincs a kimenő levelek között", "not in the outbox yet")) }
                        }
                    }
                }
            }
        }
        TicketEvent::NoteAdded(note) => html! {
            li.note id={"event-" (record.version)} {
                (meta)
                p.hint { (tr(l, "Belső jegyzet — az ügyfél nem látja", "Internal note — the customer never sees it")) }
                p.body { (note.personal.body) }
            }
        },
        _ => {
            // A workflow step: its recorded fields, personal text included.
            let mut facts: Vec<(String, String)> = Vec::new();
            if let Value::Object(payload) = &stored.payload {
                for (key, value) in payload {
                    if key == "personal" {
                        if let Value::Object(personal) = value {
                            for (k, v) in personal {
                                facts.push((k.clone(), text_of(v)));
                            }
                        }
                    } else {
                        facts.push((key.clone(), text_of(value)));
                    }
                }
            }
            html! {
                li.step id={"event-" (record.version)} {
                    (meta)
                    @if !facts.is_empty() {
                        dl.facts { @for (k, v) in &facts { dt { (k) } dd { (v) } } }
                    }
                }
            }
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn options(list: labels::Words, language: Language, current: Option<&str>) -> Markup {
    html! {
        @for (value, hu, en) in list {
            option value=(value) selected[current == Some(*value)] { (tr(language, hu, en)) }
        }
    }
}

/// The hidden fields every action form carries.
fn hidden(user: &StaffUser, version: u64) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(user.csrf);
        input type="hidden" name="version" value=(version);
        input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7());
    }
}

fn text_area(action: &str, field: &str, label: &str, draft: &Draft, required: bool) -> Markup {
    let id = format!("{action}-{field}");
    let error = draft.field_error(action, field);
    html! {
        label for=(id) { (label) }
        textarea id=(id) name=(field) required[required] aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))] {
            (draft.value(action, field).unwrap_or(""))
        }
        @if let Some(error) = error { p.error id={(id) "-error"} { (error) } }
    }
}

fn text_input(action: &str, field: &str, label: &str, draft: &Draft, required: bool, list: Option<&str>) -> Markup {
    let id = format!("{action}-{field}");
    let error = draft.field_error(action, field);
    html! {
        label for=(id) { (label) }
        input id=(id) type="text" name=(field) value=(draft.value(action, field).unwrap_or("")) required[required] list=[list]
            aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))];
        @if let Some(error) = error { p.error id={(id) "-error"} { (error) } }
    }
}

fn choice(
    action: &str,
    field: &str,
    label: &str,
    draft: &Draft,
    list: labels::Words,
    language: Language,
    current: Option<&str>,
    optional: bool,
) -> Markup {
    let id = format!("{action}-{field}");
    let error = draft.field_error(action, field);
    let selected = draft.value(action, field).or(current);
    html! {
        label for=(id) { (label) }
        select id=(id) name=(field) aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))] {
            @if optional { option value="" { "—" } }
            (options(list, language, selected))
        }
        @if let Some(error) = error { p.error id={(id) "-error"} { (error) } }
    }
}

/// The form of one action.
#[allow(clippy::too_many_arguments)]
fn action_form(
    action: &str,
    ticket: &TicketView,
    user: &StaffUser,
    draft: &Draft,
    registry: &ticket_domain::registry::Registry,
    canned: &[(String, String, String, String)],
    canned_q: Option<&str>,
) -> Markup {
    let l = user.language;
    let n = ticket.number;
    let open = draft.action == action;
    let refusal = (draft.action == action).then_some(draft.problem.as_ref()).flatten();
    let post = format!("/console/tickets/{n}/{action}");
    let submit = labels::action(action, l);
    let body = match action {
        "acknowledge" => html! {
            p.hint { (tr(l, "A visszaigazolás eljutott az ügyfélhez (levélben vagy szóban).", "The confirmation reached the customer (by mail or in person).")) }
        },
        "investigate" => html! {
            (choice(action, "category", tr(l, "Kategória", "Category"), draft, CATEGORIES, l, ticket.category.as_ref().map(labels::api_name).as_deref(), false))
            (choice(action, "service_area", tr(l, "Szolgáltatási terület", "Service area"), draft, SERVICE_AREAS, l, ticket.service_area.as_ref().map(labels::api_name).as_deref(), false))
            (choice(action, "contact_method", tr(l, "Kapcsolatfelvétel módja", "How the reporter was contacted"), draft, CONTACT_METHODS, l, None, false))
        },
        "escalate" => {
            let error = draft.field_error(action, "division");
            html! {
                label for="escalate-division" { (tr(l, "Szakterület", "Division")) }
                select #escalate-division name="division" required aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| "escalate-division-error")] {
                    @for (id, division) in &registry.divisions {
                        option value=(id) selected[draft.value(action, "division") == Some(id.as_str())] { (division.name) " (" (id) ")" }
                    }
                }
                @if let Some(error) = error { p.error #escalate-division-error { (error) } }
                (text_area(action, "reason", tr(l, "Miért kell továbbítani?", "Why it needs the division"), draft, true))
            }
        }
        "escalation-answer" => {
            text_area(action, "outcome", tr(l, "A szakterület válasza", "The division's answer"), draft, true)
        }
        "resolve" => {
            let complaint = ticket.category == Some(ticket_domain::vocabulary::Category::Complaint);
            let checked = draft.action != action || draft.values.contains_key("within_own_authority");
            html! {
                (text_area(action, "resolution", tr(l, "A megoldás (az ügyfél ezt kapja)", "The resolution (the customer is told this)"), draft, true))
                (text_input(action, "root_cause", tr(l, "Kiváltó ok", "Root cause"), draft, true, Some("root-causes")))
                label for="resolve-own" {
                    input #resolve-own type="checkbox" name="within_own_authority" value="true" checked[checked];
                    " " (tr(l, "Saját hatáskörben megoldva", "Resolved within own authority"))
                }
                @if complaint {
                    (choice(action, "complaint_outcome", tr(l, "A panasz elbírálása", "The complaint's outcome"), draft, OUTCOMES, l, None, false))
                    (text_area(action, "rejection_reasons", tr(l, "Az elutasítás indoka (részleges vagy teljes elutasításnál)", "Reasons for rejecting (whole or in part)"), draft, false))
                }
            }
        }
        "close" => {
            html! { p.hint { (tr(l, "Lezárás után az elégedettségi kérdőív kimegy.", "Closing sends the satisfaction survey.")) } }
        }
        "reopen" => text_area(action, "reason", tr(l, "Miért nyitja újra?", "Why reopen it?"), draft, true),
        "out-of-scope" => {
            text_area(action, "reason", tr(l, "Miért esik kívül a hatókörön?", "Why is it out of scope?"), draft, true)
        }
        "notes" => {
            text_area(action, "body", tr(l, "Jegyzet (csak a munkatársak látják)", "Note (staff only)"), draft, true)
        }
        "replies" => html! {
            (text_area(action, "body", tr(l, "Üzenet az ügyfélnek", "Message to the customer"), draft, true))
        },
        "assign" => {
            let error = draft.field_error(action, "assignee");
            html! {
                label for="assign-assignee" { (tr(l, "Felelős", "Assignee")) }
                select #assign-assignee name="assignee" aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| "assign-assignee-error")] {
                    @for (name, terms) in registry.staff.iter().filter(|(_, t)| !t.disabled) {
                        option value=(name) selected[ticket.assignee.as_deref() == Some(name.as_str())] { (terms.shown_name(name)) }
                    }
                }
                @if let Some(error) = error { p.error #assign-assignee-error { (error) } }
            }
        }
        "priority" => html! {
            (choice(action, "priority", tr(l, "Prioritás", "Priority"), draft, PRIORITIES, l, Some(ticket.priority.name()), false))
            (text_input(action, "reason", tr(l, "Indok", "Reason"), draft, true, None))
        },
        "reclassify" => html! {
            (choice(action, "category", tr(l, "Új kategória", "New category"), draft, CATEGORIES, l, None, true))
            (choice(action, "service_area", tr(l, "Új szolgáltatási terület", "New service area"), draft, SERVICE_AREAS, l, None, true))
            (text_input(action, "reason", tr(l, "Indok", "Reason"), draft, true, None))
        },
        "contract" => html! {
            label for="contract-contract_id" { (tr(l, "Szerződés", "Contract")) }
            select #contract-contract_id name="contract_id" {
                @for (id, _) in registry.contracts.iter().filter(|(_, c)| !c.retired) {
                    option value=(id) selected[ticket.contract_id.as_deref() == Some(id.as_str())] { (id) }
                }
            }
        },
        "survey-answer" => html! {
            label for="survey-score" { (tr(l, "Pontszám (1–5)", "Score (1–5)")) }
            select #survey-score name="score" { @for s in 1..=5 { option value=(s) { (s) } } }
            (text_area(action, "comment", tr(l, "Megjegyzés", "Comment"), draft, false))
        },
        _ => return html! {},
    };
    let canned_list: Vec<&(String, String, String, String)> = canned
        .iter()
        .filter(|(_, title, _, body)| {
            canned_q.is_none_or(|q| {
                let q = q.to_lowercase();
                title.to_lowercase().contains(&q) || body.to_lowercase().contains(&q)
            })
        })
        .collect();
    html! {
        details.action id={"action-" (action)} open[open] {
            summary { (submit) }
            @if action == "replies" && !canned.is_empty() {
                form method="get" action={"/console/tickets/" (n)} aria-label=(tr(l, "Sablon válasz", "Canned reply")) {
                    label for="canned-q" { (tr(l, "Sablonok keresése", "Search canned replies")) }
                    input #canned-q type="search" name="canned_q" value=(canned_q.unwrap_or(""));
                    label for="canned" { (tr(l, "Sablon", "Canned reply")) }
                    select #canned name="canned" {
                        @for (id, title, language, _) in &canned_list { option value=(id) { "[" (language) "] " (title) } }
                    }
                    " "
                    button.secondary type="submit" { (tr(l, "Sablon betöltése", "Use this reply")) }
                }
            }
            form.stack method="post" action=(post) {
                (hidden(user, ticket.version))
                (body)
                @if let Some(problem) = refusal {
                    p.alert role="alert" id={"refusal-" (action)} { (problem.detail) }
                }
                p { button type="submit" { (submit) } }
            }
        }
    }
}

/// What changed since `version`: the events after it, in words.
fn changes_since(
    history: &[TicketRecord],
    version: u64,
    registry: &ticket_domain::registry::Registry,
    language: Language,
) -> Markup {
    let l = language;
    let newer: Vec<&TicketRecord> = history.iter().filter(|r| r.version > version).collect();
    html! {
        div.changes role="alert" #changes {
            p { strong { (tr(l, "Amíg ön írt, a jegy megváltozott — a piszkozatát megtartottuk.", "The ticket changed while you were writing — your draft is kept.")) } }
            ul {
                @for r in &newer {
                    li {
                        (labels::event_type(ticket_domain::codec::encode(&r.event).event_type, l)) " · " (actor_text(&r.actor, registry, l)) " · " (local_time(r.occurred_at))
                        @match &r.event {
                            TicketEvent::AgentReplied(e) => { ": " (e.personal.body.as_str().chars().take(200).collect::<String>()) }
                            TicketEvent::NoteAdded(e) => { ": " (e.personal.body.as_str().chars().take(200).collect::<String>()) }
                            TicketEvent::Assigned(e) => { ": " (e.assignee) }
                            _ => {}
                        }
                    }
                }
            }
            p { (tr(l, "Nézze át, és küldje el újra, ha még érvényes.", "Check it, and send it again if it still holds.")) }
        }
    }
}

async fn render(
    state: &AppState,
    user: &StaffUser,
    number: &str,
    draft: Draft,
    canned_q: Option<&str>,
    status: StatusCode,
) -> Response {
    let l = user.language;
    let not_found = || async {
        super::message(
            state,
            user,
            StatusCode::NOT_FOUND,
            tr(l, "Nincs ilyen jegy", "No such ticket"),
            &format!("#{number}"),
        )
        .await
    };
    let ticket_id = match commands::resolve_ticket(state, number).await {
        Ok(id) => id,
        Err(error) if error.status == StatusCode::NOT_FOUND => return not_found().await,
        Err(error) => {
            return super::message(state, user, error.status, &error.problem.title, &error.problem.detail).await;
        }
    };
    let (ticket, history) = match (state.service.load(ticket_id).await, state.service.history(ticket_id).await) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(ticket_app::AppError::NotFound(_)), _) => return not_found().await,
        (Err(e), _) | (_, Err(e)) => {
            let error = ApiError::from(e);
            return super::message(state, user, error.status, &error.problem.title, &error.problem.detail).await;
        }
    };
    let Some(current) = view(ticket_id, &ticket) else { return not_found().await };
    let registry = match state.registry.current().await {
        Ok(r) => r,
        Err(error) => {
            return super::message(state, user, StatusCode::SERVICE_UNAVAILABLE, "503", &error.to_string()).await;
        }
    };
    let clocks = ticket_projections::sla_clocks::clocks_of(&state.database, ticket_id).await.unwrap_or_default();
    let mails = ticket_mail::outbox::for_ticket(&state.database, ticket_id).await.unwrap_or_default();
    let may_act = commands::may_command(&user.caller).is_ok();
    let canned = if may_act { canned_replies(state).await } else { Vec::new() };
    let causes = if may_act && current.allowed_actions.iter().any(|a| a == "resolve") {
        root_causes(state).await
    } else {
        Vec::new()
    };
    let counts = nav_counts(state, user).await;
    let now = state.service.clock().now();
    let contract = current.contract_id.as_deref().and_then(|id| ticket_domain::vocabulary::ContractId::parse(id).ok());
    let calendar = registry.calendar_for(contract.as_ref(), &state.calendar);
    let present = state.console.live.present(current.number as i64);
    let n = current.number;
    let assignee = current.assignee.as_deref().map(|a| {
        ticket_domain::vocabulary::StaffName::parse(a)
            .ok()
            .and_then(|s| registry.staff.get(&s).map(|t| t.shown_name(&s).to_owned()))
            .unwrap_or_else(|| a.to_owned())
    });
    let may_read_attachments = user.caller.role != Role::QualityManager;
    let title = format!("#{n} {}", current.subject);
    let order = [
        "replies",
        "notes",
        "acknowledge",
        "investigate",
        "escalate",
        "escalation-answer",
        "resolve",
        "close",
        "reopen",
        "assign",
        "priority",
        "reclassify",
        "contract",
        "out-of-scope",
        "survey-answer",
    ];
    let content = html! {
        h1 { (title) }
        @if matches!(user.caller.role, Role::Auditor | Role::Admin | Role::QualityManager) {
            p { a #history-link href={"/console/tickets/" (n) "/history"} { (tr(l, "Előzmények és időgép", "History and time control")) } }
        }
        @if crate::record::ever_a_complaint(&history) {
            p { a href={"/console/tickets/" (n) "/complaint-record"} { (tr(l, "Jegyzőkönyv a panaszról (nyomtatható)", "Complaint record (printable)")) } }
        }
        p #presence .presence aria-live="polite" { (super::live::presence_text(&present, &user.display_name, l)) }
        p #live-change .notice role="status" hidden { (tr(l, "A jegy közben megváltozott. ", "This ticket has just changed. ")) a href={"/console/tickets/" (n)} { (tr(l, "Újratöltés", "Reload")) } " " (tr(l, "(a piszkozatok elvesznek — előbb küldje el őket)", "(drafts are lost — send them first)")) }
        @if draft.problem.as_ref().is_some_and(|p| p.code == "version_conflict") {
            (changes_since(&history, draft.from_version.unwrap_or(0), &registry, l))
        }
        div.ticket {
            section aria-labelledby="timeline-title" {
                h2 #timeline-title { (tr(l, "Előzmények", "Timeline")) }
                ol.timeline {
                    @for record in &history { (entry(n, record, &registry, &mails, l, may_read_attachments)) }
                }
            }
            section aria-labelledby="facts-title" {
                h2 #facts-title { (tr(l, "Adatok", "Details")) }
                dl.facts {
                    dt { (tr(l, "Állapot", "Status")) } dd #ticket-status .status { (labels::word(labels::STATUSES, current.status.name(), l)) }
                    dt { (tr(l, "Csatorna", "Channel")) } dd { (labels::word(labels::CHANNELS, &labels::api_name(&current.channel), l)) }
                    dt { (tr(l, "Kategória", "Category")) } dd { (current.category.as_ref().map(|c| labels::word(CATEGORIES, &labels::api_name(c), l).to_owned()).unwrap_or("—".into())) }
                    dt { (tr(l, "Szolgáltatási terület", "Service area")) } dd { (current.service_area.as_ref().map(|c| labels::word(SERVICE_AREAS, &labels::api_name(c), l).to_owned()).unwrap_or("—".into())) }
                    dt { (tr(l, "Prioritás", "Priority")) } dd { (labels::word(PRIORITIES, current.priority.name(), l)) }
                    dt { (tr(l, "Szerződés", "Contract")) } dd { (current.contract_id.as_deref().unwrap_or("—")) }
                    dt { (tr(l, "Felelős", "Assignee")) } dd #ticket-assignee { (assignee.unwrap_or_else(|| "—".into())) }
                    @if let Some(division) = &current.escalated_to { dt { (tr(l, "Szakterületnél", "With division")) } dd { (division) } }
                    dt { (tr(l, "Bejelentő", "Reporter")) } dd { (current.reporter.name) @if let Some(e) = &current.reporter.email { br; (e) } @if let Some(p) = &current.reporter.phone { br; (p) } }
                    dt { (tr(l, "Beérkezett", "Received")) } dd { (local_time(current.received_at)) }
                    dt { (tr(l, "Verzió", "Version")) } dd #ticket-version { (current.version) }
                }
                h2 { (tr(l, "SLA órák", "SLA clocks")) }
                @if clocks.is_empty() { p.hint { (tr(l, "Nincs futó óra.", "No clocks.")) } }
                ul {
                    @for clock in &clocks {
                        li {
                            (labels::api_name(&clock.target)) ": "
                            @if let Some(met) = clock.met_at { (tr(l, "teljesítve ", "met ")) (local_time(met)) }
                            @else {
                                (super::queues::sla_badge(clock.due_at, clock.due_at.map(|d| calendar.left_until(now, d).num_seconds()), clock.paused, l))
                            }
                        }
                    }
                }
                h2 { (tr(l, "Műveletek", "Actions")) }
                @if !may_act {
                    p.hint { (tr(l, "Az ön szerepköre olvashatja, de nem módosíthatja a jegyeket.", "Your role may read tickets but not change them.")) }
                } @else {
                    @if current.allowed_actions.iter().any(|a| a == "assign") && current.assignee.as_deref() != Some(user.name.as_str()) {
                        form #assign-me method="post" action={"/console/tickets/" (n) "/assign"} {
                            (hidden(user, current.version))
                            input type="hidden" name="assignee" value=(user.name);
                            button.secondary type="submit" { (tr(l, "Magamhoz veszem", "Assign to me")) }
                        }
                    }
                    // A refusal shows beside its form; when the workflow no longer offers that
                    // form (someone else moved the ticket on), above the forms.
                    @if let Some(problem) = draft.problem.as_ref().filter(|_| !current.allowed_actions.iter().any(|a| *a == draft.action)) {
                        p.alert #refusal role="alert" { strong { (labels::action(&draft.action, l)) ": " } (problem.detail) }
                    }
                    @for action in order {
                        @if current.allowed_actions.iter().any(|a| a == action) {
                            (action_form(action, &current, user, &draft, &registry, &canned, canned_q))
                        }
                    }
                    datalist #root-causes { @for cause in &causes { option value=(cause) {} } }
                }
            }
        }
    };
    let data = PageData { live: Some(format!("/console/live?ticket={n}")), rows: None, ticket: Some(n.to_string()) };
    respond(status, layout(user, &title, &Section::Ticket, &counts, data, content))
}

/// The fields of a form as the API's JSON body of the action (blank fields left out).
fn body_of(action: &str, posted: &Posted) -> Value {
    let mut body = Map::new();
    let skip = ["csrf", "version", "idempotency_key"];
    for (key, value) in &posted.fields {
        if skip.contains(&key.as_str()) || value.trim().is_empty() {
            continue;
        }
        let value = match key.as_str() {
            "within_own_authority" => json!(true),
            "score" => value.trim().parse::<u64>().map(|n| json!(n)).unwrap_or(json!(value)),
            // Text areas keep what was typed; choices are trimmed.
            "body" | "resolution" | "reason" | "outcome" | "rejection_reasons" | "comment" => json!(value),
            _ => json!(value.trim()),
        };
        body.insert(key.clone(), value);
    }
    if action == "resolve" && !body.contains_key("within_own_authority") {
        body.insert("within_own_authority".into(), json!(false));
    }
    Value::Object(body)
}

/// The action's domain command through the API's own request types and parser.
fn parse_action(action: &str, body: Value, language: Language) -> Result<ticket_domain::TicketCommand, ApiError> {
    fn typed<T: serde::de::DeserializeOwned>(body: Value, language: Language) -> Result<T, ApiError> {
        serde_json::from_value(body).map_err(|error| {
            let message = error.to_string();
            let field = message.split('`').nth(1).unwrap_or("body").to_owned();
            let problem = if message.starts_with("missing field") {
                tr(language, "Kötelező kitölteni.", "This is required.").to_owned()
            } else {
                tr(language, "Érvénytelen érték.", "Not a valid value.").to_owned()
            };
            ApiError::validation(
                format!("{field}: {problem}"),
                vec![crate::http::problem::FieldError { field, problem }],
            )
        })
    }
    let action = match action {
        "acknowledge" => Action::Acknowledge(typed(body, language)?),
        "investigate" => Action::Investigate(typed(body, language)?),
        "escalate" => Action::Escalate(typed(body, language)?),
        "escalation-answer" => Action::EscalationAnswer(typed(body, language)?),
        "resolve" => Action::Resolve(typed(body, language)?),
        "close" => Action::Close(typed(body, language)?),
        "reopen" => Action::Reopen(typed(body, language)?),
        "contract" => Action::LinkContract(typed(body, language)?),
        "assign" => Action::Assign(typed(body, language)?),
        "priority" => Action::Prioritise(typed(body, language)?),
        "reclassify" => Action::Reclassify(typed(body, language)?),
        "out-of-scope" => Action::OutOfScope(typed(body, language)?),
        "notes" => Action::Note(typed(body, language)?),
        "replies" => Action::Reply(typed(body, language)?),
        "survey-answer" => Action::SurveyAnswer(typed(body, language)?),
        _ => return Err(ApiError::not_found(format!("no action is named '{action}'"))),
    };
    commands::parse(&action)
}

/// `POST /console/tickets/{number}/{action}`: one workflow step from its form.
pub async fn act(
    State(state): State<AppState>,
    Path((number, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let user = posted.user.clone();
    let l = user.language;
    if let Err(error) = commands::may_command(&user.caller) {
        return super::message(
            &state,
            &user,
            StatusCode::FORBIDDEN,
            tr(l, "Nem engedélyezett", "Not allowed"),
            &error.problem.detail,
        )
        .await;
    }
    let version: Option<u64> = posted.get("version").and_then(|v| v.parse().ok());
    let key = posted.get("idempotency_key").map(|k| format!("console-{k}"));
    let body = body_of(&action, &posted);
    let values: HashMap<String, String> = posted.fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let again = |problem: Problem, status: StatusCode| {
        let draft = Draft {
            action: action.clone(),
            values: values.clone(),
            problem: Some(problem),
            from_version: version,
            language: l,
        };
        let user = user.clone();
        let number = number.clone();
        let state = state.clone();
        async move { render(&state, &user, &number, draft, None, status).await }
    };
    let command = match parse_action(&action, body.clone(), l) {
        Ok(command) => command,
        Err(error) if error.status == StatusCode::NOT_FOUND => {
            return super::message(&state, &user, StatusCode::NOT_FOUND, "404", &error.problem.detail).await;
        }
        Err(error) => return again(error.problem, error.status).await,
    };
    let ticket_id = match commands::resolve_ticket(&state, &number).await {
        Ok(id) => id,
        Err(error) => {
            return super::message(&state, &user, error.status, &error.problem.title, &error.problem.detail).await;
        }
    };
    let raw = serde_json::to_vec(&body).unwrap_or_default();
    let path = format!("/console/tickets/{number}/{action}");
    let fingerprint = Fingerprint { method: "POST", path: &path, body: &raw };
    let answer =
        commands::run(&state, &user.caller, version, key, &fingerprint, Request::Command { ticket_id, command }).await;
    match answer {
        Ok(Answer::Ticket { view, .. }) => after(&view, &action),
        Ok(Answer::Stored { status, body }) if status < 300 => match serde_json::from_str::<TicketView>(&body) {
            Ok(view) => after(&view, &action),
            Err(_) => Redirect::to(&format!("/console/tickets/{number}")).into_response(),
        },
        Ok(Answer::Stored { status, body }) => match serde_json::from_str::<Problem>(&body) {
            Ok(problem) => {
                again(localise(problem, l), StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT)).await
            }
            Err(_) => Redirect::to(&format!("/console/tickets/{number}")).into_response(),
        },
        Ok(Answer::InProgress) => {
            let problem = ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "In progress",
                tr(
                    l,
                    "Az előző beküldés még fut; várjon egy pillanatot, és töltse be újra az oldalt.",
                    "The first submission is still running; wait a moment and reload the page.",
                ),
            )
            .problem;
            again(problem, StatusCode::CONFLICT).await
        }
        Err(error) => again(localise(error.problem, l), error.status).await,
    }
}

/// The refusal in the user's language where we say it ourselves (the workflow's own reason stays).
fn localise(mut problem: Problem, language: Language) -> Problem {
    let l = language;
    match problem.code.as_str() {
        "version_conflict" => {
            problem.detail = tr(
                l,
                "A jegyet közben más módosította; lent látja, mi változott.",
                "Someone changed the ticket meanwhile; what changed is shown below.",
            )
            .to_owned();
        }
        "invalid_transition" if l == Language::Hu => {
            let status = problem.current_status.as_deref().map(|s| labels::word(labels::STATUSES, s, l).to_owned());
            let mut detail = match status {
                Some(status) => format!("Ez a lépés most nem lehetséges: a jegy állapota „{status}”."),
                None => "Ez a lépés most nem lehetséges.".to_owned(),
            };
            if let Some(allowed) = problem.allowed_actions.as_ref().filter(|a| !a.is_empty()) {
                let words: Vec<&str> = allowed.iter().map(|a| labels::action(a, l)).collect();
                detail.push_str(&format!(" Most lehetséges: {}.", words.join(", ")));
            }
            problem.detail = detail;
        }
        "nothing_to_change" if l == Language::Hu => {
            problem.detail = "Nincs mit módosítani: a jegy már így áll.".to_owned();
        }
        "outcome_not_informed" if l == Language::Hu => {
            problem.detail =
                "Megoldás előtt a bejelentőt tájékoztatni kell a szakterület válaszáról (válasz az ügyfélnek)."
                    .to_owned();
        }
        _ => {}
    }
    problem
}

/// After a step: back to the ticket (a closed ticket's page still shows its history).
fn after(view: &TicketView, action: &str) -> Response {
    let anchor = match action {
        "replies" | "notes" => format!("#event-{}", view.version),
        _ => String::new(),
    };
    Redirect::to(&format!("/console/tickets/{}{anchor}", view.number)).into_response()
}

/// `GET /console/tickets/{number}/attachments/{sha256}`: a file the customer sent (not for
/// quality managers: attachments are personal data).
pub async fn attachment(
    State(state): State<AppState>,
    user: StaffUser,
    Path((number, sha256)): Path<(String, String)>,
) -> Response {
    if user.caller.role == Role::QualityManager {
        return super::message(
            &state,
            &user,
            StatusCode::FORBIDDEN,
            "403",
            tr(user.language, "A csatolmányok személyes adatok.", "Attachments are personal data."),
        )
        .await;
    }
    let Ok(ticket_id) = commands::resolve_ticket(&state, &number).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(history) = state.service.history(ticket_id).await else { return StatusCode::NOT_FOUND.into_response() };
    let found = history
        .iter()
        .flat_map(|r| match &r.event {
            TicketEvent::Received(e) => e.personal.attachments.clone(),
            TicketEvent::CustomerReplied(e) => e.personal.attachments.clone(),
            _ => Vec::new(),
        })
        .find(|a| a.sha256 == sha256);
    let Some(file) = found else { return StatusCode::NOT_FOUND.into_response() };
    let Ok(Some(bytes)) = state.intake.attachments.get(&file.sha256).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.media_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    response
}

/// `GET /console/tickets/{number}/complaint-record`: the §17/A record, in the user's language.
pub async fn complaint_record(State(state): State<AppState>, user: StaffUser, Path(number): Path<String>) -> Response {
    let Ok(ticket_id) = commands::resolve_ticket(&state, &number).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (Ok(history), Ok(outbox)) =
        (state.service.history(ticket_id).await, ticket_mail::outbox::for_ticket(&state.database, ticket_id).await)
    else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let context = crate::record::RecordContext {
        outbox: &outbox,
        answer_days: state.complaint_answer_days,
        now: state.service.clock().now(),
        company: &state.company,
        language: user.language,
    };
    match crate::record::render(&history, &context) {
        Some(markup) => markup.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
