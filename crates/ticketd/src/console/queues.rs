//! `/console/queues/{queue}`: a queue as a table, with the API's filters and more (contract,
//! received from–to, text), sorting by any column, paging, saved views and bulk actions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use ticket_domain::TicketCommand;
use ticket_domain::vocabulary::{ContractId, Language, Priority, Reason, StaffName, TicketNumber};
use ticket_projections::queues::{self, Queue, QueueFilter, QueueRow, QueueSortColumn};

use super::labels::{self, CATEGORIES, CHANNELS, PRIORITIES, SERVICE_AREAS};
use super::{PageData, Posted, Section, StaffUser, layout, local_time, nav_counts, respond, span};
use crate::commands::{self, Answer, Fingerprint, Request};
use crate::http::AppState;
use crate::pages::tr;
use crate::sql;

pub const PAGE_ROWS: u32 = 50;

/// The filters of a queue page, as its URL carries them.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub pairs: Vec<(String, String)>,
}

const FILTER_KEYS: [&str; 12] = [
    "category",
    "service_area",
    "channel",
    "priority",
    "assignee",
    "division",
    "contract",
    "from",
    "to",
    "resolved_from",
    "resolved_to",
    "q",
];

impl Filters {
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The URL query of the filters (and sort), without paging: what a saved view keeps.
    pub fn query(&self, with: &[(&str, String)]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, v)| (FILTER_KEYS.contains(&k.as_str()) || k == "sort" || k == "dir") && !v.trim().is_empty())
            .filter(|(k, _)| !with.iter().any(|(w, _)| w == k))
            .cloned()
            .collect();
        pairs.extend(with.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| ((*k).to_owned(), v.clone())));
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }
}

/// Midnight in Budapest of a `YYYY-MM-DD` day.
fn day_start(text: &str) -> Option<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    day.and_hms_opt(0, 0, 0)?.and_local_timezone(chrono_tz::Europe::Budapest).earliest().map(|t| t.with_timezone(&Utc))
}

/// The filter the read model answers, and what in the URL was not understood (field, why).
fn filter_of(filters: &Filters, language: Language) -> (QueueFilter, Vec<(&'static str, String)>) {
    let mut filter = QueueFilter { limit: PAGE_ROWS, ..QueueFilter::default() };
    let mut errors = Vec::new();
    let mut choice = |key: &'static str, words: labels::Words| -> Option<String> {
        let value = filters.get(key)?;
        if words.iter().any(|(n, _, _)| *n == value) {
            Some(value.to_owned())
        } else {
            errors.push((key, tr(language, "Ismeretlen érték.", "Unknown value.").to_owned()));
            None
        }
    };
    filter.category = choice("category", CATEGORIES);
    filter.service_area = choice("service_area", SERVICE_AREAS);
    filter.channel = choice("channel", CHANNELS);
    filter.priority = choice("priority", PRIORITIES);
    filter.assignee = filters.get("assignee").map(str::to_owned);
    filter.division = filters.get("division").map(str::to_owned);
    filter.contract = filters.get("contract").map(str::to_owned);
    let mut day = |key: &'static str| {
        let text = filters.get(key)?;
        let start = day_start(text);
        if start.is_none() {
            errors.push((key, tr(language, "Dátum ÉÉÉÉ-HH-NN alakban.", "A date like 2026-03-02.").to_owned()));
        }
        start
    };
    filter.received_from = day("from");
    filter.resolved_from = day("resolved_from");
    // The end of a `to` day: the next day's own midnight (a day is 23 or 25 hours when the
    // clocks change).
    let mut day_end = |key: &'static str| {
        let text = filters.get(key)?;
        let end = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .and_then(|d| day_start(&d.to_string()));
        if end.is_none() {
            errors.push((key, tr(language, "Dátum ÉÉÉÉ-HH-NN alakban.", "A date like 2026-03-02.").to_owned()));
        }
        end
    };
    filter.received_to = day_end("to");
    filter.resolved_to = day_end("resolved_to");
    if let Some(text) = filters.get("q") {
        if text.chars().count() > queues::QUEUE_TEXT_CHARS_MAX {
            errors.push(("q", format!("{} {}", tr(language, "Legfeljebb", "At most"), queues::QUEUE_TEXT_CHARS_MAX)));
        } else {
            filter.text = Some(text.to_owned());
        }
    }
    filter.sort = filters.get("sort").and_then(QueueSortColumn::parse);
    filter.descending = filters.get("dir") == Some("desc");
    let page: u32 = filters.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).clamp(1, 100_000);
    filter.offset = (page - 1) * PAGE_ROWS;
    (filter, errors)
}

fn queue_of(name: &str) -> Option<Queue> {
    Queue::parse(name)
}

/// The SLA badge: its state in words and a class for its colour.
pub fn sla_badge(
    row_due: Option<DateTime<Utc>>,
    left_seconds: Option<i64>,
    paused: bool,
    language: Language,
) -> Markup {
    let Some(due) = row_due else {
        if paused {
            return html! { span.badge.sla-paused { (tr(language, "Szüneteltetve", "Paused")) } };
        }
        return html! { span.hint { "—" } };
    };
    let left = left_seconds.unwrap_or(0);
    let (class, text) = if paused {
        ("sla-paused", tr(language, "Szüneteltetve", "Paused").to_owned())
    } else if left <= 0 {
        ("sla-over", format!("{} {}", tr(language, "Lejárt, túllépés:", "Overdue by"), span(left, language)))
    } else if left <= 30 * 60 {
        ("sla-urgent", format!("{} {}", tr(language, "30 percen belül:", "Under 30 min:"), span(left, language)))
    } else if left <= 60 * 60 {
        ("sla-soon", format!("{} {}", tr(language, "1 órán belül:", "Under 1 h:"), span(left, language)))
    } else {
        ("sla-ok", format!("{} {}", tr(language, "Hátravan:", "Left:"), span(left, language)))
    };
    html! {
        span class={"badge " (class)} data-sla=(class) { (text) }
        br;
        span.hint { time datetime=(due.to_rfc3339()) { (local_time(due)) } }
    }
}

/// One row of a queue table.
pub fn row_markup(
    state: &AppState,
    registry: &ticket_domain::registry::Registry,
    row: &QueueRow,
    now: DateTime<Utc>,
    user: &StaffUser,
    selectable: bool,
) -> Markup {
    let l = user.language;
    let contract = row.contract_id.as_deref().and_then(|id| ContractId::parse(id).ok());
    let calendar = registry.calendar_for(contract.as_ref(), &state.calendar);
    let left = row.due_at.map(|due| calendar.left_until(now, due).num_seconds());
    let assignee = row.assignee.as_deref().map(|a| {
        StaffName::parse(a)
            .ok()
            .and_then(|n| registry.staff.get(&n).map(|t| t.shown_name(&n).to_owned()))
            .unwrap_or_else(|| a.to_owned())
    });
    html! {
        tr data-number=(row.number) data-id=(row.ticket_id) {
            @if selectable {
                td { input type="checkbox" name="ticket" value=(row.number) form="bulk" aria-label={(tr(l, "Kijelölés: ", "Select ")) "#" (row.number)}; }
            }
            td { a.open href={"/console/tickets/" (row.number)} { "#" (row.number) } }
            td { (row.subject) }
            td { (row.reporter_name.as_deref().unwrap_or("")) @if let Some(address) = &row.reporter_address { br; span.hint { (address) } } }
            td { (labels::word(CHANNELS, &row.channel, l)) }
            td { (row.category.as_deref().map(|c| labels::word(CATEGORIES, c, l)).unwrap_or("—")) }
            td { (labels::word(PRIORITIES, &row.priority, l)) }
            td.status { (labels::word(labels::STATUSES, &row.status, l)) @if let Some(division) = &row.escalated_to { br; span.hint { (division) } } }
            td { (assignee.unwrap_or_else(|| "—".into())) }
            td { (span((now - row.received_at).num_seconds().max(0), l)) }
            td { (sla_badge(row.due_at, left, row.paused, l)) }
        }
    }
}

fn columns(language: Language) -> [(&'static str, &'static str); 10] {
    let l = language;
    [
        ("number", tr(l, "Szám", "Number")),
        ("subject", tr(l, "Tárgy", "Subject")),
        ("reporter", tr(l, "Bejelentő", "Reporter")),
        ("channel", tr(l, "Csatorna", "Channel")),
        ("category", tr(l, "Kategória", "Category")),
        ("priority", tr(l, "Prioritás", "Priority")),
        ("status", tr(l, "Állapot", "Status")),
        ("assignee", tr(l, "Felelős", "Assignee")),
        ("received", tr(l, "Kora", "Age")),
        ("due", tr(l, "SLA határidő", "SLA due")),
    ]
}

async fn saved_views(state: &AppState, owner: &str) -> Vec<(String, String, String)> {
    sql::fetch(
        &state.database,
        "SELECT name, queue, query FROM saved_views WHERE owner = $1 ORDER BY name",
        vec![owner.into()],
    )
    .await
    .unwrap_or_default()
}

fn select(
    id: &str,
    name: &str,
    label: &str,
    current: Option<&str>,
    options: &[(String, String)],
    error: Option<&String>,
    any: &str,
) -> Markup {
    html! {
        label for=(id) {
            (label)
            select id=(id) name=(name) aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))] {
                option value="" { (any) }
                @for (value, text) in options {
                    option value=(value) selected[current == Some(value.as_str())] { (text) }
                }
            }
            @if let Some(error) = error { span.error id={(id) "-error"} { (error) } }
        }
    }
}

fn words(list: labels::Words, language: Language) -> Vec<(String, String)> {
    list.iter().map(|(n, hu, en)| ((*n).to_owned(), tr(language, hu, en).to_owned())).collect()
}

/// `GET /console/queues/{queue}` (also `?fragment=rows`: only the table's body).
pub async fn page(
    State(state): State<AppState>,
    user: StaffUser,
    Path(name): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    render(&state, &user, &name, Filters { pairs }, None).await
}

async fn render(state: &AppState, user: &StaffUser, name: &str, filters: Filters, notice: Option<Markup>) -> Response {
    let l = user.language;
    let Some(queue) = queue_of(name) else {
        return super::message(
            state,
            user,
            StatusCode::NOT_FOUND,
            tr(l, "Nincs ilyen sor", "No such queue"),
            tr(l, "Válasszon a bal oldali listából.", "Pick one from the list on the left."),
        )
        .await;
    };
    let (filter, errors) = filter_of(&filters, l);
    let rows = match queues::queue(&state.database, queue, &user.name, &filter).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "reading a queue for the console");
            return super::message(
                state,
                user,
                StatusCode::SERVICE_UNAVAILABLE,
                "503",
                tr(l, "A sor most nem olvasható; próbálja újra.", "The queue cannot be read now; try again."),
            )
            .await;
        }
    };
    let registry = match state.registry.current().await {
        Ok(r) => r,
        Err(error) => {
            tracing::error!(%error, "reading the registry for the console");
            return super::message(
                state,
                user,
                StatusCode::SERVICE_UNAVAILABLE,
                "503",
                tr(l, "Próbálja újra.", "Try again."),
            )
            .await;
        }
    };
    let now = state.service.clock().now();
    let may_act = commands::may_command(&user.caller).is_ok();
    let body = html! {
        tbody {
            @for row in &rows { (row_markup(state, &registry, row, now, user, may_act)) }
            @if rows.is_empty() {
                tr { td colspan="11" { (tr(l, "Nincs jegy ebben a nézetben.", "No tickets in this view.")) } }
            }
        }
    };
    if filters.get("fragment") == Some("rows") {
        return respond(StatusCode::OK, body);
    }
    let counts = nav_counts(state, user).await;
    let views = saved_views(state, &user.name).await;
    let error_of = |key: &str| errors.iter().find(|(k, _)| *k == key).map(|(_, e)| e);
    let staff: Vec<(String, String)> = registry
        .staff
        .iter()
        .filter(|(_, t)| !t.disabled)
        .map(|(n, t)| (n.to_string(), t.shown_name(n).to_owned()))
        .collect();
    let divisions: Vec<(String, String)> =
        registry.divisions.iter().map(|(id, d)| (id.to_string(), d.name.clone())).collect();
    let contracts: Vec<(String, String)> =
        registry.contracts.iter().filter(|(_, c)| !c.retired).map(|(id, _)| (id.to_string(), id.to_string())).collect();
    let page_number = filter.offset / PAGE_ROWS + 1;
    let here = format!("/console/queues/{name}");
    let query_now = filters.query(&[]);
    let own_url = if query_now.is_empty() { here.clone() } else { format!("{here}?{query_now}") };
    let any = tr(l, "(mind)", "(any)");
    let title = labels::queue(name, l).to_owned();
    let content = html! {
        h1 { (title) }
        @if let Some(notice) = notice { (notice) }
        form.filters method="get" action=(here) role="search" aria-label=(tr(l, "Szűrők", "Filters")) {
            label for="filter-text" {
                (tr(l, "Szöveg (tárgy, név, cím)", "Text (subject, name, address)"))
                input #filter-text type="search" name="q" value=(filters.get("q").unwrap_or("")) aria-invalid=[error_of("q").map(|_| "true")];
            }
            (select("filter-category", "category", tr(l, "Kategória", "Category"), filters.get("category"), &words(CATEGORIES, l), error_of("category"), any))
            (select("filter-area", "service_area", tr(l, "Szolgáltatási terület", "Service area"), filters.get("service_area"), &words(SERVICE_AREAS, l), error_of("service_area"), any))
            (select("filter-channel", "channel", tr(l, "Csatorna", "Channel"), filters.get("channel"), &words(CHANNELS, l), error_of("channel"), any))
            (select("filter-priority", "priority", tr(l, "Prioritás", "Priority"), filters.get("priority"), &words(PRIORITIES, l), error_of("priority"), any))
            (select("filter-assignee", "assignee", tr(l, "Felelős", "Assignee"), filters.get("assignee"), &staff, None, any))
            (select("filter-division", "division", tr(l, "Szakterület", "Division"), filters.get("division"), &divisions, None, any))
            (select("filter-contract", "contract", tr(l, "Szerződés", "Contract"), filters.get("contract"), &contracts, None, any))
            label for="filter-from" {
                (tr(l, "Beérkezett ettől", "Received from"))
                input #filter-from type="date" name="from" value=(filters.get("from").unwrap_or("")) aria-invalid=[error_of("from").map(|_| "true")] aria-describedby=[error_of("from").map(|_| "filter-from-error")];
                @if let Some(e) = error_of("from") { span.error #filter-from-error { (e) } }
            }
            label for="filter-to" {
                (tr(l, "eddig", "to"))
                input #filter-to type="date" name="to" value=(filters.get("to").unwrap_or("")) aria-invalid=[error_of("to").map(|_| "true")] aria-describedby=[error_of("to").map(|_| "filter-to-error")];
                @if let Some(e) = error_of("to") { span.error #filter-to-error { (e) } }
            }
            @for key in ["resolved_from", "resolved_to"] {
                @if let Some(value) = filters.get(key) {
                    label for={"filter-" (key)} {
                        (if key == "resolved_from" { tr(l, "Megoldva ettől", "Resolved from") } else { tr(l, "eddig", "to") })
                        input #{"filter-" (key)} type="date" name=(key) value=(value) aria-invalid=[error_of(key).map(|_| "true")] aria-describedby=[error_of(key).map(|_| format!("filter-{key}-error"))];
                        @if let Some(e) = error_of(key) { span.error #{"filter-" (key) "-error"} { (e) } }
                    }
                }
            }
            @if let Some(sort) = filters.get("sort") { input type="hidden" name="sort" value=(sort); }
            @if let Some(dir) = filters.get("dir") { input type="hidden" name="dir" value=(dir); }
            button type="submit" { (tr(l, "Szűrés", "Filter")) }
            a href=(here) { (tr(l, "Szűrők törlése", "Clear filters")) }
        }
        details {
            summary { (tr(l, "Mentett nézetek", "Saved views")) " (" (views.len()) ")" }
            ul {
                @for (view, queue, query) in &views {
                    li {
                        a href={"/console/queues/" (queue) @if !query.is_empty() { "?" (query) }} { (view) }
                        " "
                        form.inline method="post" action="/console/views/delete" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            input type="hidden" name="name" value=(view);
                            input type="hidden" name="back" value=(own_url);
                            button.secondary type="submit" aria-label={(tr(l, "Törlés: ", "Delete ")) (view)} { (tr(l, "Törlés", "Delete")) }
                        }
                    }
                }
            }
            form method="post" action="/console/views" {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="queue" value=(name);
                input type="hidden" name="query" value=(query_now);
                label for="view-name" { (tr(l, "A mostani szűrők mentése ezen a néven", "Save the current filters as")) }
                input #view-name type="text" name="name" maxlength="100" required;
                " "
                button type="submit" { (tr(l, "Mentés", "Save")) }
            }
        }
        @if may_act {
            form #bulk .bulk method="post" action={(here) "/bulk"} aria-label=(tr(l, "Tömeges művelet a kijelölt sorokon", "Bulk action on the selected rows")) {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="back" value=(query_now);
                input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7());
                label for="bulk-assignee" {
                    (tr(l, "Kiosztás neki", "Assign to"))
                    select #bulk-assignee name="assignee" {
                        option value="" { "—" }
                        @for (value, text) in &staff { option value=(value) { (text) } }
                    }
                }
                label for="bulk-priority" {
                    (tr(l, "Prioritás", "Priority"))
                    select #bulk-priority name="priority" {
                        option value="" { "—" }
                        @for (value, text) in words(PRIORITIES, l) { option value=(value) { (text) } }
                    }
                }
                label for="bulk-reason" {
                    (tr(l, "Indok (prioritáshoz)", "Reason (for priority)"))
                    input #bulk-reason type="text" name="reason" maxlength="500";
                }
                button type="submit" { (tr(l, "Alkalmazás a kijelöltekre", "Apply to selected")) }
            }
        }
        table.queue aria-describedby="queue-caption" {
            caption #queue-caption .visually-hidden { (title) }
            thead {
                tr {
                    @if may_act {
                        th scope="col" { input #select-all type="checkbox" aria-label=(tr(l, "Mind kijelölése", "Select all")); }
                    }
                    @for (key, text) in columns(l) {
                        @let sorted = filters.get("sort") == Some(key);
                        @let descending = sorted && filters.get("dir") == Some("desc");
                        th scope="col" aria-sort=[sorted.then_some(if descending { "descending" } else { "ascending" })] {
                            a href={(here) "?" (filters.query(&[("sort", key.to_owned()), ("dir", if sorted && !descending { "desc".to_owned() } else { "asc".to_owned() })]))} {
                                (text) @if sorted { (if descending { " ▼" } else { " ▲" }) }
                            }
                        }
                    }
                }
            }
            (body)
        }
        nav.pager aria-label=(tr(l, "Lapozás", "Pages")) {
            @if page_number > 1 {
                a href={(here) "?" (filters.query(&[("page", (page_number - 1).to_string())]))} rel="prev" { "← " (tr(l, "Előző", "Previous")) }
            }
            span { (tr(l, "Oldal", "Page")) " " (page_number) }
            @if rows.len() as u32 == PAGE_ROWS {
                a href={(here) "?" (filters.query(&[("page", (page_number + 1).to_string())]))} rel="next" { (tr(l, "Következő", "Next")) " →" }
            }
        }
    };
    let data = PageData { live: Some("/console/live".into()), rows: Some(own_url), ticket: None };
    respond(StatusCode::OK, layout(user, &title, &Section::Queue(name.to_owned()), &counts, data, content))
}

/// `GET /console/queues/{queue}/rows/{number}`: the row again, or nothing when it left the queue.
pub async fn row(
    State(state): State<AppState>,
    user: StaffUser,
    Path((name, number)): Path<(String, i64)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let Some(queue) = queue_of(&name) else { return StatusCode::NOT_FOUND.into_response() };
    let (mut filter, _) = filter_of(&Filters { pairs }, user.language);
    filter.number = Some(number);
    filter.offset = 0;
    let (Ok(rows), Ok(registry)) =
        (queues::queue(&state.database, queue, &user.name, &filter).await, state.registry.current().await)
    else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let now = state.service.clock().now();
    let may_act = commands::may_command(&user.caller).is_ok();
    respond(StatusCode::OK, html! { @for row in &rows { (row_markup(&state, &registry, row, now, &user, may_act)) } })
}

/// `GET /console/counts`: each queue's count (JSON), for the navigation's live badges.
pub async fn counts(State(state): State<AppState>, user: StaffUser) -> Response {
    let nav = nav_counts(&state, &user).await;
    let counts: serde_json::Map<String, serde_json::Value> = nav
        .queues
        .into_iter()
        .map(|(q, n)| (q, serde_json::json!(n)))
        .chain(nav.divisions.into_iter().map(|(d, n)| (format!("escalated:{d}"), serde_json::json!(n))))
        .collect();
    let mut response = axum::Json(counts).into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// `POST /console/queues/{queue}/bulk`: assign or set the priority of the selected tickets.
pub async fn bulk(State(state): State<AppState>, Path(name): Path<String>, posted: Posted) -> Response {
    let user = posted.user.clone();
    let l = user.language;
    if let Err(error) = commands::may_command(&user.caller) {
        return super::message(&state, &user, StatusCode::FORBIDDEN, "403", &error.problem.detail).await;
    }
    let back = Filters { pairs: serde_urlencoded::from_str(posted.get("back").unwrap_or("")).unwrap_or_default() };
    let numbers: Vec<u64> = posted.all("ticket").iter().filter_map(|n| n.parse().ok()).collect();
    let mut problems: Vec<String> = Vec::new();
    let assignee = posted.get("assignee").map(|a| StaffName::parse(a).map_err(|e| e.problem));
    let priority = posted
        .get("priority")
        .map(|p| Priority::ALL.into_iter().find(|x| x.name() == p).ok_or("unknown priority".to_owned()));
    let reason = posted.get("reason").map(Reason::parse);
    let mut commands_to_run: Vec<(&str, TicketCommand)> = Vec::new();
    match assignee {
        Some(Ok(assignee)) => commands_to_run.push(("assign", TicketCommand::Assign { assignee })),
        Some(Err(problem)) => problems.push(problem),
        None => {}
    }
    match (priority, reason) {
        (Some(Ok(priority)), Some(Ok(reason))) => {
            commands_to_run.push(("priority", TicketCommand::Prioritise { priority, reason }))
        }
        (Some(Ok(_)), None) => problems
            .push(tr(l, "A prioritás módosításához indok kell.", "A priority change needs a reason.").to_owned()),
        (Some(Ok(_)), Some(Err(e))) => problems.push(e.problem),
        (Some(Err(e)), _) => problems.push(e),
        (None, _) => {}
    }
    if numbers.is_empty() {
        problems.push(tr(l, "Nincs kijelölt sor.", "No rows are selected.").to_owned());
    }
    if commands_to_run.is_empty() && problems.is_empty() {
        problems.push(tr(l, "Válasszon felelőst vagy prioritást.", "Choose an assignee or a priority.").to_owned());
    }
    let mut done = 0usize;
    if problems.is_empty() {
        let key = posted.get("idempotency_key").unwrap_or("").to_owned();
        for number in &numbers {
            let Ok(ticket_number) = TicketNumber::new(*number) else { continue };
            let ticket_id = match commands::resolve_ticket(&state, &ticket_number.to_string()).await {
                Ok(id) => id,
                Err(error) => {
                    problems.push(format!("#{number}: {}", error.problem.detail));
                    continue;
                }
            };
            for (action, command) in &commands_to_run {
                let check = state.registry.check_references(command).await;
                if let Ok(Err(unknown)) = check {
                    problems.push(format!("#{number}: {unknown}"));
                    continue;
                }
                let body = format!("{action}:{number}");
                let fingerprint = Fingerprint { method: "POST", path: &posted.path, body: body.as_bytes() };
                let item_key = (!key.is_empty()).then(|| format!("console-bulk-{key}-{action}-{number}"));
                match commands::run(
                    &state,
                    &user.caller,
                    None,
                    item_key,
                    &fingerprint,
                    Request::Command { ticket_id, command: command.clone() },
                )
                .await
                {
                    Ok(Answer::Ticket { .. }) => done += 1,
                    Ok(Answer::Stored { status, body }) if status < 300 => {
                        let _ = body;
                        done += 1;
                    }
                    Ok(Answer::Stored { body, .. }) => problems.push(format!("#{number}: {}", problem_detail(&body))),
                    Ok(Answer::InProgress) => {
                        problems.push(format!("#{number}: {}", tr(l, "még folyamatban", "still in progress")))
                    }
                    Err(error) => problems.push(format!("#{number}: {}", error.problem.detail)),
                }
            }
        }
    }
    let notice = html! {
        @if done > 0 { p.notice role="status" { (tr(l, "Elvégezve: ", "Done: ")) (done) } }
        @if !problems.is_empty() {
            div.alert role="alert" { ul { @for p in &problems { li { (p) } } } }
        }
    };
    render(&state, &user, &name, back, Some(notice)).await
}

pub fn problem_detail(body: &str) -> String {
    serde_json::from_str::<crate::http::problem::Problem>(body).map(|p| p.detail).unwrap_or_else(|_| body.to_owned())
}

/// `POST /console/views`: save the current filters under a name (replacing one of that name).
pub async fn save_view(State(state): State<AppState>, posted: Posted) -> Response {
    let name = posted.get("name").unwrap_or("").chars().take(100).collect::<String>();
    let queue = posted.get("queue").filter(|q| Queue::parse(q).is_some()).unwrap_or("all-open").to_owned();
    let query = posted.get("query").unwrap_or("").to_owned();
    if !name.is_empty() {
        let saved = sql::execute(
            &state.database,
            "INSERT INTO saved_views (owner, name, queue, query) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, name) DO UPDATE SET queue = excluded.queue, query = excluded.query",
            vec![posted.user.name.clone().into(), name.into(), queue.clone().into(), query.clone().into()],
        )
        .await;
        if let Err(error) = saved {
            tracing::error!(%error, "saving a view");
        }
    }
    let target =
        if query.is_empty() { format!("/console/queues/{queue}") } else { format!("/console/queues/{queue}?{query}") };
    Redirect::to(&target).into_response()
}

/// `POST /console/views/delete`.
pub async fn delete_view(State(state): State<AppState>, posted: Posted) -> Response {
    let name = posted.get("name").unwrap_or("").to_owned();
    let _ = sql::execute(
        &state.database,
        "DELETE FROM saved_views WHERE owner = $1 AND name = $2",
        vec![posted.user.name.clone().into(), name.into()],
    )
    .await;
    let back = posted.get("back").filter(|b| b.starts_with("/console/")).unwrap_or("/console").to_owned();
    Redirect::to(&back).into_response()
}
