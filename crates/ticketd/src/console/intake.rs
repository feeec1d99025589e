//! `/console/new`: a phone call, a letter or a message on social media entered by an agent, in
//! a few seconds — through the same parsing and command path as `POST /api/v1/tickets`.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::json;

use super::labels::{self, CATEGORIES, PRIORITIES};
use super::session::{check_origin, csrf_refused, same_secret};
use super::{PageData, Section, StaffUser, layout, nav_counts, respond};
use crate::commands::{self, Answer, CreateTicket, Fingerprint, Request as CommandRequest};
use crate::http::AppState;
use crate::http::problem::Problem;
use crate::http::tickets::TicketView;
use crate::pages::tr;

fn field(values: &HashMap<String, String>, name: &str) -> String {
    values.get(name).cloned().unwrap_or_default()
}

fn error_for(
    problem: Option<&Problem>,
    names: &[&str],
    language: ticket_domain::vocabulary::Language,
) -> Option<String> {
    problem?
        .errors
        .as_ref()?
        .iter()
        .find(|e| names.contains(&e.field.as_str()))
        .map(|e| labels::problem(&e.problem, language))
}

fn form(user: &StaffUser, values: &HashMap<String, String>, problem: Option<&Problem>) -> Markup {
    let l = user.language;
    let input = |id: &str, name: &str, label: &str, kind: &str, errors: &[&str], required: bool| {
        let error = error_for(problem, errors, l);
        html! {
            label for=(id) { (label) @if required { " *" } }
            input id=(id) type=(kind) name=(name) value=(field(values, name)) required[required]
                aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))];
            @if let Some(e) = error { p.error id={(id) "-error"} { (e) } }
        }
    };
    let chosen = |name: &str| values.get(name).map(String::as_str);
    html! {
        h1 { (tr(l, "Új bejelentés rögzítése", "New report")) }
        @if let Some(problem) = problem {
            div.alert role="alert" { p { (problem.detail) } }
        }
        form.stack method="post" action="/console/new" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(user.csrf);
            input type="hidden" name="idempotency_key" value=(values.get("idempotency_key").cloned().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
            label for="new-channel" { (tr(l, "Csatorna", "Channel")) " *" }
            select #new-channel name="channel" {
                @for (value, hu, en) in labels::CHANNELS.iter().filter(|(v, _, _)| matches!(*v, "phone" | "other" | "email")) {
                    option value=(value) selected[chosen("channel") == Some(*value)] { (tr(l, hu, en)) }
                }
            }
            (input("new-name", "name", tr(l, "Bejelentő neve", "Reporter's name"), "text", &["reporter.name"], true))
            (input("new-email", "email", tr(l, "E-mail cím", "E-mail address"), "email", &["reporter.email"], false))
            (input("new-phone", "phone", tr(l, "Telefonszám", "Phone number"), "tel", &["reporter.phone"], false))
            p.hint { (tr(l, "E-mail cím vagy telefonszám közül legalább az egyik kell.", "An e-mail address or a phone number, at least one.")) }
            (input("new-subject", "subject", tr(l, "Tárgy", "Subject"), "text", &["subject"], true))
            @let message_error = error_for(problem, &["message"], l);
            label for="new-message" { (tr(l, "Üzenet", "Message")) " *" }
            textarea #new-message name="message" required aria-invalid=[message_error.as_ref().map(|_| "true")] aria-describedby=[message_error.as_ref().map(|_| "new-message-error")] { (field(values, "message")) }
            @if let Some(e) = message_error { p.error #new-message-error { (e) } }
            label for="new-category" { (tr(l, "Kategória (ha ismert)", "Category (if known)")) }
            select #new-category name="category" {
                option value="" { "—" }
                @for (value, hu, en) in CATEGORIES { option value=(value) selected[chosen("category") == Some(*value)] { (tr(l, hu, en)) } }
            }
            label for="new-priority" { (tr(l, "Prioritás", "Priority")) }
            select #new-priority name="priority" {
                @for (value, hu, en) in PRIORITIES { option value=(value) selected[chosen("priority").unwrap_or("normal") == *value] { (tr(l, hu, en)) } }
            }
            label for="new-language" { (tr(l, "Az ügyfél nyelve", "The customer's language")) }
            select #new-language name="language" {
                option value="hu" selected[chosen("language") != Some("en")] { "Magyar" }
                option value="en" selected[chosen("language") == Some("en")] { "English" }
            }
            @let attachment_error = error_for(problem, &["attachment"], l);
            label for="new-attachment" { (tr(l, "Csatolmány (nem kötelező)", "Attachment (optional)")) }
            input #new-attachment type="file" name="attachment" aria-invalid=[attachment_error.as_ref().map(|_| "true")] aria-describedby=[attachment_error.as_ref().map(|_| "new-attachment-error")];
            @if let Some(e) = attachment_error { p.error #new-attachment-error { (e) } }
            p { button type="submit" { (tr(l, "Rögzítés", "Create ticket")) } }
        }
    }
}

async fn show(
    state: &AppState,
    user: &StaffUser,
    values: &HashMap<String, String>,
    problem: Option<&Problem>,
    status: StatusCode,
) -> Response {
    let counts = nav_counts(state, user).await;
    let title = tr(user.language, "Új bejelentés", "New report");
    respond(status, layout(user, title, &Section::New, &counts, PageData::default(), form(user, values, problem)))
}

pub async fn page(State(state): State<AppState>, user: StaffUser) -> Response {
    if let Err(error) = commands::may_command(&user.caller) {
        return super::message(&state, &user, StatusCode::FORBIDDEN, "403", &error.problem.detail).await;
    }
    show(&state, &user, &HashMap::new(), None, StatusCode::OK).await
}

fn problem(status: StatusCode, code: &str, detail: String, field: Option<&str>) -> Problem {
    let mut error = crate::http::problem::ApiError::new(status, code, "Invalid", detail.clone());
    if let Some(field) = field {
        error.problem.errors = Some(vec![crate::http::problem::FieldError { field: field.into(), problem: detail }]);
    }
    error.problem
}

pub async fn submit(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Err(refused) = check_origin(&parts.headers, &state.console) {
        return refused;
    }
    let user = match StaffUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let l = user.language;
    if let Err(error) = commands::may_command(&user.caller) {
        return super::message(&state, &user, StatusCode::FORBIDDEN, "403", &error.problem.detail).await;
    }
    let request = Request::from_parts(parts, body);
    let Ok(mut multipart) = Multipart::from_request(request, &state).await else {
        return show(
            &state,
            &user,
            &HashMap::new(),
            Some(&problem(
                StatusCode::BAD_REQUEST,
                "malformed_form",
                tr(l, "Az űrlap nem olvasható.", "The form could not be read.").into(),
                None,
            )),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let mut values: HashMap<String, String> = HashMap::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(part)) => {
                let name = part.name().unwrap_or_default().to_owned();
                if name == "attachment" {
                    let file_name = part.file_name().unwrap_or("attachment").to_owned();
                    match part.bytes().await {
                        Ok(bytes) if bytes.is_empty() => {}
                        Ok(bytes) => file = Some((file_name, bytes.to_vec())),
                        Err(_) => {
                            let p = problem(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "attachment_too_large",
                                tr(l, "A csatolmány túl nagy.", "The attachment is too large.").into(),
                                Some("attachment"),
                            );
                            return show(&state, &user, &values, Some(&p), StatusCode::PAYLOAD_TOO_LARGE).await;
                        }
                    }
                } else if let Ok(text) = part.text().await {
                    values.insert(name, text);
                }
            }
            Ok(None) => break,
            Err(_) => {
                let p = problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "attachment_too_large",
                    tr(l, "Az űrlap túl nagy.", "The form is too large.").into(),
                    Some("attachment"),
                );
                return show(&state, &user, &values, Some(&p), StatusCode::PAYLOAD_TOO_LARGE).await;
            }
        }
    }
    if !same_secret(values.get("csrf").map(String::as_str).unwrap_or(""), &user.csrf) {
        return csrf_refused(l);
    }
    let text = |name: &str| values.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut body = json!({
        "channel": text("channel").unwrap_or_else(|| "phone".into()),
        "reporter": { "name": values.get("name").cloned().unwrap_or_default() },
        "subject": values.get("subject").cloned().unwrap_or_default(),
        "message": values.get("message").cloned().unwrap_or_default(),
        "priority": text("priority").unwrap_or_else(|| "normal".into()),
        "language": if text("language").as_deref() == Some("en") { "en" } else { "hu" },
    });
    if let Some(email) = text("email") {
        body["reporter"]["email"] = json!(email);
    }
    if let Some(phone) = text("phone") {
        body["reporter"]["phone"] = json!(phone);
    }
    if let Some(category) = text("category") {
        body["category"] = json!(category);
    }
    let create: CreateTicket = match serde_json::from_value(body.clone()) {
        Ok(create) => create,
        Err(error) => {
            let p = problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", error.to_string(), None);
            return show(&state, &user, &values, Some(&p), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    // Check the fields before storing a file for them.
    if let Err(error) = commands::receive_command(&create, ticket_domain::vocabulary::TicketNumber::new(1).expect("1"))
    {
        return show(&state, &user, &values, Some(&error.problem), error.status).await;
    }
    let mut attachments = Vec::new();
    if let Some((file_name, bytes)) = &file {
        match state.intake.attachments.put(file_name, bytes).await {
            Ok(reference) => attachments.push(reference),
            Err(error) => {
                let p = problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "attachment_refused",
                    error.to_string(),
                    Some("attachment"),
                );
                return show(&state, &user, &values, Some(&p), StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        }
    }
    let key = values.get("idempotency_key").filter(|k| !k.is_empty()).map(|k| format!("console-new-{k}"));
    let mut raw = serde_json::to_vec(&body).unwrap_or_default();
    for a in &attachments {
        raw.extend_from_slice(a.sha256.as_bytes());
    }
    let fingerprint = Fingerprint { method: "POST", path: "/console/new", body: &raw };
    match commands::run(
        &state,
        &user.caller,
        None,
        key,
        &fingerprint,
        CommandRequest::Create { body: &create, attachments },
    )
    .await
    {
        Ok(Answer::Ticket { view, .. }) => Redirect::to(&format!("/console/tickets/{}", view.number)).into_response(),
        Ok(Answer::Stored { status, body }) if status < 300 => match serde_json::from_str::<TicketView>(&body) {
            Ok(view) => Redirect::to(&format!("/console/tickets/{}", view.number)).into_response(),
            Err(_) => Redirect::to("/console").into_response(),
        },
        Ok(Answer::Stored { body, status }) => {
            let p = serde_json::from_str::<Problem>(&body)
                .unwrap_or_else(|_| problem(StatusCode::CONFLICT, "refused", body.clone(), None));
            show(&state, &user, &values, Some(&p), StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT)).await
        }
        Ok(Answer::InProgress) => {
            let p = problem(
                StatusCode::CONFLICT,
                "request_in_progress",
                tr(l, "Az előző beküldés még fut.", "The first submission is still running.").into(),
                None,
            );
            show(&state, &user, &values, Some(&p), StatusCode::CONFLICT).await
        }
        Err(error) => show(&state, &user, &values, Some(&error.problem), error.status).await,
    }
}
