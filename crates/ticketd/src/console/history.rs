//! The replay view (`/console/tickets/{number}/history`; auditors and admins, quality managers
//! read-only — nothing here changes anything): every event of a ticket with its envelope, what
//! each changed in the ticket's fields (old → new), and the ticket exactly as it stood at any
//! instant, all computed on the server from the domain's own fold (`Ticket::evolve`, the one the
//! command side decides with). Beside it: the ticket's proof against the latest checkpoint
//! (read-only: a GET never signs one),
//! downloads (the history as JSON lines, the proof bundle, a period's complaints) and the
//! registry's history.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::Value;
use ticket_app::TicketRecord;
use ticket_domain::Ticket;
use ticket_domain::vocabulary::{Language, Role};

use super::{PageData, Section, StaffUser, labels, layout, local_time, nav_counts, respond};
use crate::commands;
use crate::http::AppState;
use crate::http::tickets::{EventView, event_view, view};
use crate::pages::tr;

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// The slider: the ticket as it stood at this event's instant (its version).
    pub at: Option<String>,
    /// The instant field: RFC 3339, or the console's local `YYYY-MM-DDTHH:MM` (Europe/Budapest).
    pub as_of: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only events by this actor (as the filter's options name them).
    pub actor: Option<String>,
}

/// Who may open the view: auditors and admins, and quality managers (it only reads).
fn allowed(user: &StaffUser) -> bool {
    matches!(user.caller.role, Role::Auditor | Role::Admin | Role::QualityManager)
}

/// The ticket's fields as the API shows them (`GET /tickets/{id}`), flattened to `a.b` names;
/// the version is left out (every event changes it).
pub fn fields(view: &crate::http::tickets::TicketView) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(members) => {
                for (name, member) in members {
                    let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    walk(&key, member, out);
                }
            }
            Value::Null => {
                out.insert(prefix.to_owned(), "—".to_owned());
            }
            Value::String(text) => {
                out.insert(prefix.to_owned(), text.clone());
            }
            Value::Array(items) => {
                let texts: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(prefix.to_owned(), if texts.is_empty() { "—".to_owned() } else { texts.join(", ") });
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(mut value) = serde_json::to_value(view) {
        if let Some(members) = value.as_object_mut() {
            members.remove("version");
        }
        walk("", &value, &mut out);
    }
    out
}

/// One event and what it changed: (field, old, new).
pub struct Step {
    pub view: EventView,
    pub changes: Vec<(String, String, String)>,
}

/// Folds the history once, event by event: each event's changes to the ticket's fields.
pub fn steps(ticket_id: ticket_domain::vocabulary::TicketId, history: &[TicketRecord]) -> Vec<Step> {
    let mut ticket = Ticket::default();
    let mut before: BTreeMap<String, String> = BTreeMap::new();
    let mut steps = Vec::with_capacity(history.len());
    for record in history {
        ticket = ticket.evolve(&record.event, record.occurred_at);
        let after = view(ticket_id, &ticket).map(|v| fields(&v)).unwrap_or_default();
        let mut changes = Vec::new();
        for (name, new) in &after {
            let old = before.get(name).map_or("—", String::as_str);
            if old != new {
                changes.push((name.clone(), old.to_owned(), new.clone()));
            }
        }
        for (name, old) in &before {
            if !after.contains_key(name) {
                changes.push((name.clone(), old.clone(), "—".to_owned()));
            }
        }
        steps.push(Step { view: event_view(record), changes });
        before = after;
    }
    steps
}

/// The ticket as it stood at `instant`: its events that occurred up to then, folded (exactly
/// what `GET /api/v1/tickets/{id}?as_of=` answers).
pub fn as_of(history: &[TicketRecord], instant: DateTime<Utc>) -> Ticket {
    Ticket::replay(history.iter().take_while(|record| record.occurred_at <= instant).map(|r| (&r.event, r.occurred_at)))
}

/// An instant from the form: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in Europe/Budapest.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .ok()?;
    chrono_tz::Europe::Budapest.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
}

/// The actor as the filter names it, e.g. `staff:anna`, `customer`, `system:mail-dispatcher`.
fn actor_key(actor: &Value) -> String {
    let part = |name: &str| actor.get(name).and_then(Value::as_str).unwrap_or("");
    match part("kind") {
        "staff" => format!("staff:{}", part("name")),
        "system" => format!("system:{}", part("component")),
        kind => kind.to_owned(),
    }
}

fn actor_label(actor: &Value, language: Language) -> String {
    let part = |name: &str| actor.get(name).and_then(Value::as_str).unwrap_or("");
    match part("kind") {
        "staff" => format!("{} ({})", part("name"), part("role")),
        "customer" => format!("{} ({})", tr(language, "az ügyfél", "the customer"), part("channel")),
        "system" => format!("{} ({})", tr(language, "a rendszer", "the system"), part("component")),
        other => other.to_owned(),
    }
}

/// A mail Message-ID the event carries, if any (top level or among the personal fields).
fn message_id(payload: &Value) -> Option<&str> {
    payload
        .get("message_id")
        .and_then(Value::as_str)
        .or_else(|| payload.get("personal").and_then(|p| p.get("message_id")).and_then(Value::as_str))
}

fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// The proof status line: checked here, as `ticketd verify-proof` checks a bundle offline.
async fn proof_status(
    state: &AppState,
    ticket_id: ticket_domain::vocabulary::TicketId,
    language: Language,
) -> (&'static str, String) {
    let Some(key) = state.ledger_key.as_deref() else {
        return (
            "false",
            tr(
                language,
                "Ez a példány nem ír alá ellenőrzőpontot (nincs főkönyvi kulcs).",
                "This instance signs no checkpoints (no ledger key).",
            )
            .to_owned(),
        );
    };
    // Read-only: against the latest signed checkpoint (a GET never signs one; an auditor signs
    // with `POST /api/v1/audit/checkpoint`), so newer events show as not in it yet.
    let Ok(stream) = event_store::StreamId::parse(&ticket_id.stream_name()) else {
        return ("false", tr(language, "NEM igazolható", "NOT proven").to_owned());
    };
    let proven = ticket_projections::ledger::prove_stream(
        &state.raw_store,
        &state.database,
        &stream,
        None,
        state.service.clock().now(),
    )
    .await;
    match proven {
        Ok(Some(bundle)) => match ticket_ledger::bundle::verify_events(&bundle, key.public_key()) {
            Ok(ticket_ledger::bundle::Verified::Events { events: 0, .. }) => (
                "false",
                tr(
                    language,
                    "Még egyik eseménye sincs a legutóbbi aláírt ellenőrzőpontban.",
                    "None of its events is in the latest signed checkpoint yet.",
                )
                .to_owned(),
            ),
            Ok(ticket_ledger::bundle::Verified::Events { events, checkpoint, not_yet_in_checkpoint, .. }) => (
                if not_yet_in_checkpoint == 0 { "true" } else { "partly" },
                format!(
                    "{}: {events} {} {} {} {}{}",
                    tr(language, "Igazolva", "Proven"),
                    tr(language, "esemény, a", "events, in the signed checkpoint of"),
                    checkpoint.size,
                    tr(language, "eseményes aláírt ellenőrzőpontban", "events"),
                    checkpoint.signed_at.map(local_time).unwrap_or_default(),
                    if not_yet_in_checkpoint > 0 {
                        format!(
                            " ({not_yet_in_checkpoint} {})",
                            tr(language, "újabb esemény még nincs benne", "newer events not in it yet")
                        )
                    } else {
                        String::new()
                    }
                ),
            ),
            Ok(_) => {
                ("false", tr(language, "A csomag nem eseményeket igazol.", "The bundle proves no events.").to_owned())
            }
            Err(e) => ("false", format!("{}: {e}", tr(language, "NEM igazolható", "NOT proven"))),
        },
        Ok(None) => {
            ("false", tr(language, "Még nincs aláírt ellenőrzőpont.", "No checkpoint is signed yet.").to_owned())
        }
        Err(error) => {
            tracing::error!(%error, ticket = %ticket_id, "the replay view could not prove the ticket");
            (
                "false",
                tr(
                    language,
                    "NEM igazolható: a főkönyv nem igazolja ezt a jegyet (a naplóban a részletek).",
                    "NOT proven: the ledger does not prove this ticket (the details are in the log).",
                )
                .to_owned(),
            )
        }
    }
}

/// `GET /console/tickets/{number}/history`.
pub async fn page(
    State(state): State<AppState>,
    user: StaffUser,
    Path(number): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let l = user.language;
    if !allowed(&user) {
        return super::message(
            &state,
            &user,
            StatusCode::FORBIDDEN,
            tr(l, "Nincs jogosultság", "Not allowed"),
            tr(
                l,
                "Az előzményeket auditorok, adminisztrátorok és minőségügyi vezetők látják.",
                "The replay view is for auditors, admins and quality managers.",
            ),
        )
        .await;
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let ticket_id = match commands::resolve_ticket(&state, &number).await {
        Ok(id) => id,
        Err(error) => {
            return super::message(&state, &user, error.status, &error.problem.title, &error.problem.detail).await;
        }
    };
    let history = match state.service.history(ticket_id).await {
        Ok(history) => history,
        Err(e) => {
            let error = crate::http::problem::ApiError::from(e);
            return super::message(&state, &user, error.status, &error.problem.title, &error.problem.detail).await;
        }
    };
    let steps = steps(ticket_id, &history);
    let last = history.last().map(|r| r.version).unwrap_or(0);
    // The instant shown: the instant field, else the slider's event, else now (the last event).
    let mut problem = None;
    let chosen_version =
        query.at.as_deref().and_then(|at| at.trim().parse::<u64>().ok()).map(|v| v.clamp(1, last.max(1)));
    let instant = match query.as_of.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(text) => match parse_instant(text) {
            Some(at) => Some(at),
            None => {
                problem = Some(format!("{} {text:?}", tr(l, "Nem értelmezhető időpont:", "Not an instant:")));
                None
            }
        },
        None => chosen_version.and_then(|v| history.iter().find(|r| r.version == v)).map(|r| r.occurred_at),
    };
    let at = instant.unwrap_or_else(|| history.last().map(|r| r.occurred_at).unwrap_or_else(Utc::now));
    // The slider names an event: the ticket right after it (events of one decision share an
    // instant). The instant field: every event up to that instant, as `?as_of=` replays.
    let by_version = query.as_of.as_deref().is_none_or(|t| t.trim().is_empty()) && chosen_version.is_some();
    let (then, slider) = match (by_version, chosen_version) {
        (true, Some(version)) => (
            Ticket::replay(history.iter().take_while(|r| r.version <= version).map(|r| (&r.event, r.occurred_at))),
            version,
        ),
        _ => (
            as_of(&history, at),
            history.iter().take_while(|r| r.occurred_at <= at).last().map(|r| r.version).unwrap_or(0),
        ),
    };
    let shown = view(ticket_id, &then);
    let number_shown = shown
        .as_ref()
        .map(|v| v.number)
        .or_else(|| steps.first().and_then(|s| s.view.payload.get("number").and_then(Value::as_u64)))
        .unwrap_or(0);

    // Causation: which event each event was caused by, and which it caused.
    let version_of: HashMap<uuid::Uuid, u64> = history.iter().map(|r| (r.event_id, r.version)).collect();
    let mut caused: HashMap<u64, Vec<u64>> = HashMap::new();
    for record in &history {
        if let Some(cause) = record.causation_id.and_then(|c| version_of.get(&c)) {
            caused.entry(*cause).or_default().push(record.version);
        }
    }
    let mut types: Vec<String> = steps.iter().map(|s| s.view.event_type.clone()).collect();
    types.sort();
    types.dedup();
    let mut actors: Vec<(String, String)> =
        steps.iter().map(|s| (actor_key(&s.view.actor), actor_label(&s.view.actor, l))).collect();
    actors.sort();
    actors.dedup_by(|a, b| a.0 == b.0);
    let type_filter = query.event_type.as_deref().filter(|t| !t.is_empty());
    let actor_filter = query.actor.as_deref().filter(|t| !t.is_empty());
    let visible = |step: &Step| {
        type_filter.is_none_or(|t| step.view.event_type == t)
            && actor_filter.is_none_or(|a| actor_key(&step.view.actor) == a)
    };
    let (proven, proof_text) = proof_status(&state, ticket_id, l).await;
    // The registry's history is shown to auditors and admins only: read it for them only.
    let registry_changes = if matches!(user.caller.role, Role::Auditor | Role::Admin) {
        state.registry.history().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let counts = nav_counts(&state, &user).await;
    let base = format!("/console/tickets/{number_shown}/history");
    let local_input =
        |at: DateTime<Utc>| at.with_timezone(&chrono_tz::Europe::Budapest).format("%Y-%m-%dT%H:%M:%S").to_string();
    let title = format!("#{number_shown} · {}", tr(l, "Előzmények", "History"));
    let content = html! {
        h1 { (title) }
        p { a href={"/console/tickets/" (number_shown)} { (tr(l, "Vissza a jegyhez", "Back to the ticket")) } }
        @if let Some(problem) = &problem { p.alert role="alert" { (problem) } }
        section.proof aria-labelledby="proof-title" {
            h2 #proof-title { (tr(l, "Sértetlenség", "Integrity")) }
            p #proof-status data-proven=(proven) .{(if proven == "true" { "ok" } else { "warn" })} { (proof_text) }
            ul.downloads {
                li { a #download-history href={(base) "/events.jsonl"} download { (tr(l, "A jegy előzményei (JSON sorok)", "This ticket's history (JSON lines)")) } }
                @if matches!(user.caller.role, Role::Auditor | Role::Admin) {
                    li { a #download-proof href={(base) "/proof.json"} download { (tr(l, "Igazoló csomag (ticketd verify-proof)", "Proof bundle (ticketd verify-proof)")) } }
                }
            }
            @if matches!(user.caller.role, Role::Auditor | Role::Admin) {
                form.inline method="get" action="/console/audit/export" {
                    (tr(l, "Egy időszak panaszai (auditexport): ", "A period's complaints (the audit export): "))
                    label for="export-from" { (tr(l, "ettől", "from")) } " "
                    input #export-from type="date" name="from" required;
                    " " label for="export-to" { (tr(l, "eddig", "to")) } " "
                    input #export-to type="date" name="to" required;
                    " " button.secondary type="submit" { (tr(l, "Letöltés", "Download")) }
                }
            }
        }
        section aria-labelledby="time-title" {
            h2 #time-title { (tr(l, "Időgép", "Time control")) }
            form #time-control method="get" action=(base) {
                p {
                    label for="at" { (tr(l, "Esemény", "Event")) } " "
                    input #at type="range" name="at" min="1" max=(last.max(1)) value=(slider.max(1)) aria-valuetext={(tr(l, "esemény ", "event ")) (slider)};
                    " " output for="at" { (slider) " / " (last) }
                    " " button.secondary #at-go type="submit" { (tr(l, "Ugrás", "Go")) }
                }
                @if let Some(t) = type_filter { input type="hidden" name="type" value=(t); }
                @if let Some(a) = actor_filter { input type="hidden" name="actor" value=(a); }
            }
            form #instant-control method="get" action=(base) {
                p {
                    label for="as_of" { (tr(l, "vagy időpont (Budapest)", "or instant (Budapest)")) } " "
                    input #as_of type="datetime-local" step="1" name="as_of" value=(local_input(at));
                    " " button #as-of-go type="submit" { (tr(l, "Mutasd", "Show")) }
                }
                @if let Some(t) = type_filter { input type="hidden" name="type" value=(t); }
                @if let Some(a) = actor_filter { input type="hidden" name="actor" value=(a); }
            }
            h3 #state-title { (tr(l, "A jegy ekkor: ", "The ticket as it stood at ")) time #state-instant datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)) { (local_time(at)) } }
            @match &shown {
                None => p #state-none { (tr(l, "Ekkor még nem érkezett be.", "Not yet received then.")) },
                Some(v) => table.plain #state aria-labelledby="state-title" {
                    thead { tr { th scope="col" { (tr(l, "Mező", "Field")) } th scope="col" { (tr(l, "Érték", "Value")) } } }
                    tbody {
                        @for (name, value) in fields(v) {
                            tr { th scope="row" { code { (name) } } td data-field=(name) { (value) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="events-title" {
            h2 #events-title { (tr(l, "Események", "Events")) " (" (steps.len()) ")" }
            form.inline method="get" action=(base) {
                label for="filter-type" { (tr(l, "Típus", "Type")) } " "
                select #filter-type name="type" {
                    option value="" { (tr(l, "mind", "all")) }
                    @for t in &types { option value=(t) selected[type_filter == Some(t.as_str())] { (t) } }
                }
                " " label for="filter-actor" { (tr(l, "Szereplő", "Actor")) } " "
                select #filter-actor name="actor" {
                    option value="" { (tr(l, "mind", "all")) }
                    @for (key, label) in &actors { option value=(key) selected[actor_filter == Some(key.as_str())] { (label) } }
                }
                input type="hidden" name="at" value=(slider.max(1));
                " " button.secondary type="submit" { (tr(l, "Szűrés", "Filter")) }
            }
            table.plain.events #events {
                thead { tr {
                    th scope="col" { (tr(l, "Verzió", "Version")) }
                    th scope="col" { (tr(l, "Pozíció", "Position")) }
                    th scope="col" { (tr(l, "Történt / rögzítve", "Occurred / recorded")) }
                    th scope="col" { (tr(l, "Típus", "Type")) }
                    th scope="col" { (tr(l, "Szereplő", "Actor")) }
                    th scope="col" { (tr(l, "Összefüggés, ok", "Correlation, cause")) }
                    th scope="col" { (tr(l, "Mit változtatott", "What it changed")) }
                } }
                tbody {
                    @for step in steps.iter().filter(|s| visible(s)) {
                        @let e = &step.view;
                        tr #{"event-" (e.version)} data-version=(e.version) data-event-id=(e.event_id) .later[e.version > slider] {
                            td { a href={(base) "?at=" (e.version)} aria-label={(tr(l, "A jegy e esemény után: ", "The ticket after event ")) (e.version)} { (e.version) } }
                            td { (e.position) }
                            td {
                                time datetime=(e.occurred_at.to_rfc3339()) { (local_time(e.occurred_at)) }
                                br;
                                small { time datetime=(e.recorded_at.to_rfc3339()) { (local_time(e.recorded_at)) } }
                            }
                            td {
                                span.type { (labels::event_type(&e.event_type, l)) } br;
                                small { code { (e.event_type) } " v" (e.schema_version) }
                                @if let Some(id) = message_id(&e.payload) { br; small.message-id { "Message-ID: " code { (id) } } }
                                br; a.json href={(base) "/events/" (e.version)} { (tr(l, "tárolt JSON", "stored JSON")) }
                            }
                            td { (actor_label(&e.actor, l)) }
                            td {
                                small { code title=(e.correlation_id) { (short(&e.correlation_id)) } }
                                @if let Some(cause) = e.causation_id {
                                    br;
                                    @match version_of.get(&cause) {
                                        Some(v) => a.cause href={"#event-" (v)} data-cause=(v) { (tr(l, "oka: ", "caused by: ")) (v) },
                                        None => small { (tr(l, "oka: ", "caused by: ")) code { (short(&cause)) } },
                                    }
                                }
                                @if let Some(effects) = caused.get(&e.version) {
                                    br;
                                    small { (tr(l, "okozta: ", "caused: ")) }
                                    @for v in effects { " " a.effect href={"#event-" (v)} data-effect=(v) { (v) } }
                                }
                            }
                            td {
                                @if step.changes.is_empty() { small { (tr(l, "a mezőket nem érintette", "no field changed")) } }
                                @else {
                                    ul.changes {
                                        @for (name, old, new) in &step.changes {
                                            li data-change=(name) { code { (name) } ": " del { (old) } " → " ins { (new) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if matches!(user.caller.role, Role::Auditor | Role::Admin) {
            details.registry {
                summary { (tr(l, "A nyilvántartás előzményei (szerződések, szakterületek, munkatársak)", "The registry's history (contracts, divisions, staff)")) " (" (registry_changes.len()) ")" }
                table.plain #registry-history {
                    thead { tr { th scope="col" { "#" } th scope="col" { (tr(l, "Időpont", "When")) } th scope="col" { (tr(l, "Típus", "Type")) } th scope="col" { (tr(l, "Szereplő", "Actor")) } th scope="col" { (tr(l, "Adatok", "Data")) } } }
                    tbody {
                        @for change in &registry_changes {
                            tr {
                                td { (change.version) }
                                td { (local_time(change.occurred_at)) }
                                td { code { (change.event.event_type()) } }
                                td { (actor_label(&serde_json::to_value(&change.actor).unwrap_or_default(), l)) }
                                td { code.json { (change.event.to_payload().to_string()) } }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&user, &title, &Section::Ticket, &counts, PageData::default(), content))
}

async fn history_of(state: &AppState, user: &StaffUser, number: &str) -> Result<Vec<TicketRecord>, Response> {
    if !allowed(user) {
        return Err(StatusCode::FORBIDDEN.into_response());
    }
    let ticket_id = commands::resolve_ticket(state, number).await.map_err(IntoResponse::into_response)?;
    state.service.history(ticket_id).await.map_err(|e| crate::http::problem::ApiError::from(e).into_response())
}

/// `GET /console/tickets/{number}/history/events.jsonl`: every event as the API shows it, one
/// JSON object a line.
pub async fn download(State(state): State<AppState>, user: StaffUser, Path(number): Path<String>) -> Response {
    let history = match history_of(&state, &user, &number).await {
        Ok(h) => h,
        Err(response) => return response,
    };
    let mut body = String::new();
    for record in &history {
        body.push_str(&serde_json::to_string(&event_view(record)).unwrap_or_default());
        body.push('\n');
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"ticket-{number}-history.jsonl\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /console/tickets/{number}/history/events/{version}`: one event as stored and decoded.
pub async fn event_json(
    State(state): State<AppState>,
    user: StaffUser,
    Path((number, version)): Path<(String, u64)>,
) -> Response {
    let history = match history_of(&state, &user, &number).await {
        Ok(h) => h,
        Err(response) => return response,
    };
    match history.iter().find(|r| r.version == version) {
        Some(record) => {
            let mut response = axum::Json(event_view(record)).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /console/tickets/{number}/history/proof.json`: the proof bundle, as the API gives it.
pub async fn proof(State(state): State<AppState>, user: StaffUser, Path(number): Path<String>) -> Response {
    let mut response =
        crate::http::audit::proof(State(state), user.caller.clone(), Path(number.clone())).await.into_response();
    if response.status().is_success()
        && let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"ticket-{number}-proof.json\""))
    {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /console/audit/export?from=DAY&to=DAY`: the audit export of the complaints received in
/// those days (Europe/Budapest, both included), as the API gives it.
pub async fn export(
    State(state): State<AppState>,
    user: StaffUser,
    Query(days): Query<HashMap<String, String>>,
) -> Response {
    let day = |name: &str| {
        days.get(name)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|d| chrono_tz::Europe::Budapest.from_local_datetime(&d).earliest())
            .map(|d| d.with_timezone(&Utc))
    };
    let (Some(from), Some(_)) = (day("from"), day("to")) else {
        return crate::http::problem::ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A query parameter is invalid",
            "from and to must be days (YYYY-MM-DD)",
        )
        .into_response();
    };
    // The day after `to`, at its own midnight (a day is 23 or 25 hours when the clocks change).
    let Some(to) = days
        .get("to")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.succ_opt())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|d| chrono_tz::Europe::Budapest.from_local_datetime(&d).earliest())
        .map(|d| d.with_timezone(&Utc))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let query = crate::http::audit::ExportQuery { from: from.to_rfc3339(), to: to.to_rfc3339() };
    let mut response =
        crate::http::audit::export(State(state), user.caller.clone(), Ok(Query(query))).await.into_response();
    if response.status().is_success() {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"complaints-audit-export.jsonl\""),
        );
    }
    response
}
