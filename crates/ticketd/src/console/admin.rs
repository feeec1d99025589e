//! `/console/admin/*` (admins): staff accounts, divisions, contracts, canned replies — list,
//! create, edit, retire — through the registry's own commands and checks, each error beside
//! its field.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use ticket_app::CommandContext;
use ticket_app::registry::RegistryFailure;
use ticket_domain::registry::{ContractTerms, DivisionTerms, RegistryCommand, RegistryError, StaffTerms};
use ticket_domain::vocabulary::{Actor, ContractId, DivisionId, EmailAddress, Language, Role, StaffName};

use super::{PageData, Posted, Section, StaffUser, layout, nav_counts, respond};
use crate::http::AppState;
use crate::pages::tr;
use crate::sql;

/// Field → what is wrong with it.
type Errors = HashMap<String, String>;

fn context(user: &StaffUser) -> CommandContext {
    CommandContext::new(Actor::Staff { name: user.name.clone(), role: user.caller.role })
}

async fn forbidden(state: &AppState, user: &StaffUser) -> Response {
    super::message(
        state,
        user,
        StatusCode::FORBIDDEN,
        "403",
        tr(user.language, "Ez az oldal az adminisztrátoroké.", "This page is for admins."),
    )
    .await
}

/// A registry refusal as field errors (its reason names the field first: "email: …").
fn registry_errors(failure: RegistryFailure, language: Language) -> Errors {
    let mut errors = Errors::new();
    match failure {
        RegistryFailure::Refused(RegistryError::Invalid(reason)) => {
            let (field, problem) = reason.split_once(": ").unwrap_or(("form", reason.as_str()));
            errors.insert(field.trim().to_owned(), super::labels::problem(problem, language));
        }
        RegistryFailure::Refused(RegistryError::NothingToChange) => {
            errors.insert("form".into(), tr(language, "Nincs mit módosítani.", "Nothing would change.").into());
        }
        other => {
            errors.insert("form".into(), other.to_string());
        }
    }
    errors
}

fn field(id: &str, name: &str, label: &str, value: &str, errors: &Errors, kind: &str, required: bool) -> Markup {
    let error = errors.get(name);
    html! {
        label for=(id) { (label) @if required { " *" } }
        input id=(id) type=(kind) name=(name) value=(value) required[required]
            aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
        @if let Some(e) = error { p.error id={(id) "-error"} { (e) } }
    }
}

fn form_error(errors: &Errors) -> Markup {
    html! { @if let Some(e) = errors.get("form") { p.alert role="alert" { (e) } } }
}

async fn page(
    state: &AppState,
    user: &StaffUser,
    section: &'static str,
    title: &str,
    content: Markup,
    status: StatusCode,
) -> Response {
    let counts = nav_counts(state, user).await;
    respond(status, layout(user, title, &Section::Admin(section), &counts, PageData::default(), content))
}

// ---------------------------------------------------------------------------------------------
// Staff

#[derive(Debug, serde::Deserialize)]
pub struct EditQuery {
    edit: Option<String>,
}

/// `GET /console/admin/staff[?edit=NAME]`: the list, and the form (filled with NAME's entry).
pub async fn staff_page(State(state): State<AppState>, user: StaffUser, Query(query): Query<EditQuery>) -> Response {
    let mut values = HashMap::new();
    if let Some(name) = query.edit.as_deref().and_then(|n| StaffName::parse(n).ok())
        && let Ok(registry) = state.registry.load().await
        && let Some(terms) = registry.staff.get(&name)
    {
        values.insert("name".to_owned(), name.to_string());
        values.insert("email".to_owned(), terms.email.to_string());
        values.insert("display_name".to_owned(), terms.display_name.clone().unwrap_or_default());
        values.insert("role".to_owned(), terms.role.map(|r| crate::auth::role_name(r).to_owned()).unwrap_or_default());
        values.insert(
            "language".to_owned(),
            if terms.language == Some(Language::En) { "en".into() } else { "hu".into() },
        );
        values.insert("disabled".to_owned(), if terms.disabled { "true".into() } else { String::new() });
    }
    staff(&state, &user, values, Errors::new(), StatusCode::OK).await
}

async fn staff(
    state: &AppState,
    user: &StaffUser,
    values: HashMap<String, String>,
    errors: Errors,
    status: StatusCode,
) -> Response {
    if user.caller.role != Role::Admin {
        return forbidden(state, user).await;
    }
    let l = user.language;
    let registry = match state.registry.load().await {
        Ok(r) => r,
        Err(e) => return super::message(state, user, StatusCode::SERVICE_UNAVAILABLE, "503", &e.to_string()).await,
    };
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for (name, terms) in &registry.staff {
        let credentials = crate::accounts::credentials(&state.database, name.as_str()).await.ok().flatten();
        rows.push((name.clone(), terms.clone(), credentials.is_some(), credentials.is_some_and(|c| c.1.is_some())));
    }
    let content = html! {
        h1 { (tr(l, "Munkatársak", "Staff")) }
        table.plain {
            thead { tr {
                th scope="col" { (tr(l, "Név", "Name")) } th scope="col" { (tr(l, "Megjelenő név", "Display name")) } th scope="col" { "E-mail" }
                th scope="col" { (tr(l, "Szerepkör", "Role")) } th scope="col" { (tr(l, "Nyelv", "Language")) } th scope="col" { (tr(l, "Jelszó", "Password")) }
                th scope="col" { "TOTP" } th scope="col" { (tr(l, "Állapot", "State")) }
            } }
            tbody {
                @for (name, terms, password, totp) in &rows {
                    tr {
                        td { a href={"/console/admin/staff?edit=" (name)} { (name) } }
                        td { (terms.display_name.as_deref().unwrap_or("")) }
                        td { (terms.email) }
                        td { (terms.role.map(|r| super::labels::role(r, l)).unwrap_or("—")) }
                        td { (terms.language.map(|x| if x == Language::En { "en" } else { "hu" }).unwrap_or("hu")) }
                        td { (if *password { tr(l, "van", "set") } else { tr(l, "nincs", "none") }) }
                        td { (if *totp { tr(l, "be", "on") } else { tr(l, "ki", "off") }) }
                        td { (if terms.disabled { tr(l, "letiltva", "disabled") } else { tr(l, "aktív", "active") }) }
                    }
                }
            }
        }
        h2 { (tr(l, "Munkatárs felvétele vagy módosítása", "Add or change a member of staff")) }
        (form_error(&errors))
        form.stack method="post" action="/console/admin/staff" {
            input type="hidden" name="csrf" value=(user.csrf);
            (field("staff-name", "name", tr(l, "Felhasználónév (a jegyek ezt rögzítik)", "User name (what tickets record)"), &v("name"), &errors, "text", true))
            (field("staff-display", "display_name", tr(l, "Megjelenő név", "Display name"), &v("display_name"), &errors, "text", false))
            (field("staff-email", "email", "E-mail", &v("email"), &errors, "email", true))
            label for="staff-role" { (tr(l, "Szerepkör", "Role")) }
            select #staff-role name="role" {
                option value="" { (tr(l, "(nem léphet be)", "(cannot sign in)")) }
                @for (value, role) in [("agent", Role::Agent), ("quality_manager", Role::QualityManager), ("auditor", Role::Auditor), ("admin", Role::Admin)] {
                    option value=(value) selected[v("role") == value] { (super::labels::role(role, l)) }
                }
            }
            label for="staff-language" { (tr(l, "Nyelv", "Language")) }
            select #staff-language name="language" {
                option value="hu" selected[v("language") != "en"] { "Magyar" }
                option value="en" selected[v("language") == "en"] { "English" }
            }
            (field("staff-password", "password", tr(l, "Új jelszó (üresen hagyva nem változik; legalább 10 karakter)", "New password (blank: unchanged; at least 10 characters)"), "", &errors, "password", false))
            label for="staff-disabled" {
                input #staff-disabled type="checkbox" name="disabled" value="true" checked[v("disabled") == "true"];
                " " (tr(l, "Letiltva (nem léphet be, nem kaphat új jegyet)", "Disabled (cannot sign in or be assigned)"))
            }
            p { button type="submit" { (tr(l, "Mentés", "Save")) } }
        }
    };
    page(state, user, "staff", tr(l, "Munkatársak", "Staff"), content, status).await
}

pub async fn staff_save(State(state): State<AppState>, posted: Posted) -> Response {
    let user = posted.user.clone();
    if user.caller.role != Role::Admin {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let values: HashMap<String, String> =
        posted.fields.iter().filter(|(k, _)| k != "csrf" && k != "password").cloned().collect();
    let mut errors = Errors::new();
    let name = StaffName::parse(posted.get("name").unwrap_or(""))
        .map_err(|e| errors.insert("name".into(), super::labels::problem(&e.problem, l)))
        .ok();
    let email = EmailAddress::parse(posted.get("email").unwrap_or(""))
        .map_err(|e| errors.insert("email".into(), super::labels::problem(&e.problem, l)))
        .ok();
    let role = posted.get("role").map(|r| crate::auth::parse_role(r).filter(|r| *r != Role::Intake));
    if matches!(role, Some(None)) {
        errors.insert("role".into(), tr(l, "Ismeretlen szerepkör.", "Unknown role.").into());
    }
    let password = posted.raw("password").map(str::to_owned);
    if let Some(p) = &password
        && crate::accounts::check_password(p).is_err()
    {
        errors.insert("password".into(), tr(l, "10–1000 karakter.", "10 to 1,000 characters.").into());
    }
    let (Some(name), Some(email)) = (name, email) else {
        return staff(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if !errors.is_empty() {
        return staff(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let disabled = posted.get("disabled").is_some();
    let terms = StaffTerms {
        email,
        display_name: posted.get("display_name").map(str::to_owned),
        role: role.flatten(),
        language: Some(if posted.get("language") == Some("en") { Language::En } else { Language::Hu }),
        disabled,
    };
    match state.registry.execute(RegistryCommand::SaveStaff { name: name.clone(), terms }, &context(&user)).await {
        Ok(_) | Err(RegistryFailure::Refused(RegistryError::NothingToChange)) => {}
        Err(failure) => {
            return staff(&state, &user, values, registry_errors(failure, l), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    }
    if disabled {
        let _ = crate::accounts::end_sessions(&state.database, name.as_str()).await;
    }
    if let Some(password) = password
        && let Err(error) =
            crate::accounts::set_password(&state.database, name.as_str(), &password, state.service.clock().now()).await
    {
        let mut errors = Errors::new();
        errors.insert("password".into(), error.to_string());
        return staff(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    Redirect::to("/console/admin/staff").into_response()
}

// ---------------------------------------------------------------------------------------------
// Divisions

pub async fn divisions_page(State(state): State<AppState>, user: StaffUser) -> Response {
    divisions(&state, &user, HashMap::new(), Errors::new(), StatusCode::OK).await
}

async fn divisions(
    state: &AppState,
    user: &StaffUser,
    values: HashMap<String, String>,
    errors: Errors,
    status: StatusCode,
) -> Response {
    if user.caller.role != Role::Admin {
        return forbidden(state, user).await;
    }
    let l = user.language;
    let Ok(registry) = state.registry.load().await else {
        return super::message(state, user, StatusCode::SERVICE_UNAVAILABLE, "503", "registry").await;
    };
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let content = html! {
        h1 { (tr(l, "Szakterületek", "Divisions")) }
        table.plain {
            thead { tr { th scope="col" { "Id" } th scope="col" { (tr(l, "Név", "Name")) } th scope="col" { (tr(l, "Értesítési cím", "Notification address")) } th scope="col" { (tr(l, "Válaszidő (üzleti perc)", "Answer time (business minutes)")) } } }
            tbody {
                @for (id, d) in &registry.divisions {
                    tr { td { (id) } td { (d.name) } td { (d.notification_email) } td { (d.answer_minutes.map(|m| m.to_string()).unwrap_or("—".into())) } }
                }
            }
        }
        h2 { (tr(l, "Szakterület felvétele vagy módosítása", "Add or change a division")) }
        (form_error(&errors))
        form.stack method="post" action="/console/admin/divisions" {
            input type="hidden" name="csrf" value=(user.csrf);
            (field("division-id", "id", "Id", &v("id"), &errors, "text", true))
            (field("division-name", "name", tr(l, "Név", "Name"), &v("name"), &errors, "text", true))
            (field("division-email", "notification_email", tr(l, "Értesítési cím", "Notification address"), &v("notification_email"), &errors, "email", true))
            (field("division-minutes", "answer_minutes", tr(l, "Válaszidő üzleti percben", "Answer time in business minutes"), &v("answer_minutes"), &errors, "number", false))
            p { button type="submit" { (tr(l, "Mentés", "Save")) } }
        }
    };
    page(state, user, "divisions", tr(l, "Szakterületek", "Divisions"), content, status).await
}

pub async fn division_save(State(state): State<AppState>, posted: Posted) -> Response {
    let user = posted.user.clone();
    if user.caller.role != Role::Admin {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let values: HashMap<String, String> = posted.fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let mut errors = Errors::new();
    let id = DivisionId::parse(posted.get("id").unwrap_or(""))
        .map_err(|e| errors.insert("id".into(), super::labels::problem(&e.problem, l)))
        .ok();
    let email = EmailAddress::parse(posted.get("notification_email").unwrap_or(""))
        .map_err(|e| errors.insert("notification_email".into(), super::labels::problem(&e.problem, l)))
        .ok();
    let minutes = match posted.get("answer_minutes").map(str::parse::<u32>) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            errors.insert("answer_minutes".into(), tr(l, "Egész szám.", "A whole number.").into());
            None
        }
    };
    let (Some(division_id), Some(notification_email)) = (id, email) else {
        return divisions(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    if !errors.is_empty() {
        return divisions(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let terms = DivisionTerms {
        name: posted.get("name").unwrap_or("").to_owned(),
        notification_email,
        answer_minutes: minutes,
    };
    match state.registry.execute(RegistryCommand::SaveDivision { division_id, terms }, &context(&user)).await {
        Ok(_) => Redirect::to("/console/admin/divisions").into_response(),
        Err(failure) => {
            divisions(&state, &user, values, registry_errors(failure, l), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contracts (their terms as the API's JSON)

pub async fn contracts_page(State(state): State<AppState>, user: StaffUser) -> Response {
    contracts(&state, &user, HashMap::new(), Errors::new(), StatusCode::OK).await
}

async fn contracts(
    state: &AppState,
    user: &StaffUser,
    values: HashMap<String, String>,
    errors: Errors,
    status: StatusCode,
) -> Response {
    if user.caller.role != Role::Admin {
        return forbidden(state, user).await;
    }
    let l = user.language;
    let Ok(registry) = state.registry.load().await else {
        return super::message(state, user, StatusCode::SERVICE_UNAVAILABLE, "503", "registry").await;
    };
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let terms_error = errors.get("terms");
    let content = html! {
        h1 { (tr(l, "Szerződések", "Contracts")) }
        table.plain {
            thead { tr { th scope="col" { "Id" } th scope="col" { (tr(l, "Ügyfél", "Customer")) } th scope="col" { (tr(l, "Domainek", "Domains")) } th scope="col" { (tr(l, "Állapot", "State")) } th scope="col" { (tr(l, "Művelet", "Action")) } } }
            tbody {
                @for (id, c) in &registry.contracts {
                    tr {
                        td { (id) @if registry.default_contract.as_ref() == Some(id) { " (" (tr(l, "alapértelmezett", "default")) ")" } }
                        td { (c.terms.customer) }
                        td { (c.terms.email_domains.join(", ")) }
                        td { (if c.retired { tr(l, "megszűnt", "retired") } else { tr(l, "él", "live") }) }
                        td {
                            @if !c.retired {
                                form method="post" action="/console/admin/contracts/retire" {
                                    input type="hidden" name="csrf" value=(user.csrf);
                                    input type="hidden" name="id" value=(id);
                                    button.secondary type="submit" aria-label={(tr(l, "Megszüntetés: ", "Retire ")) (id)} { (tr(l, "Megszüntetés", "Retire")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (tr(l, "Szerződés felvétele vagy módosítása", "Add or change a contract")) }
        (form_error(&errors))
        form.stack method="post" action="/console/admin/contracts" {
            input type="hidden" name="csrf" value=(user.csrf);
            (field("contract-id", "id", "Id", &v("id"), &errors, "text", true))
            label for="contract-terms" { (tr(l, "Feltételek (JSON, mint a PUT /api/v1/contracts/{id} törzse)", "Terms (JSON, as the body of PUT /api/v1/contracts/{id})")) " *" }
            textarea #contract-terms name="terms" required aria-invalid=[terms_error.map(|_| "true")] aria-describedby=[terms_error.map(|_| "contract-terms-error")] {
                (if v("terms").is_empty() { r#"{"customer": "", "email_domains": [], "sla": {"first_contact_minutes": 240, "resolution_minutes": 2400}}"#.to_owned() } else { v("terms") })
            }
            @if let Some(e) = terms_error { p.error #contract-terms-error { (e) } }
            p { button type="submit" { (tr(l, "Mentés", "Save")) } }
        }
    };
    page(state, user, "contracts", tr(l, "Szerződések", "Contracts"), content, status).await
}

pub async fn contract_save(State(state): State<AppState>, posted: Posted) -> Response {
    let user = posted.user.clone();
    if user.caller.role != Role::Admin {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let values: HashMap<String, String> = posted.fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let mut errors = Errors::new();
    let id = ContractId::parse(posted.get("id").unwrap_or(""))
        .map_err(|e| errors.insert("id".into(), super::labels::problem(&e.problem, l)))
        .ok();
    let terms = serde_json::from_str::<ContractTerms>(posted.raw("terms").unwrap_or(""))
        .map_err(|e| errors.insert("terms".into(), e.to_string()))
        .ok();
    let (Some(contract_id), Some(terms)) = (id, terms) else {
        return contracts(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    match state.registry.execute(RegistryCommand::SaveContract { contract_id, terms }, &context(&user)).await {
        Ok(_) => Redirect::to("/console/admin/contracts").into_response(),
        Err(failure) => {
            let mut errors = registry_errors(failure, l);
            if let Some(e) = errors.remove("form").filter(|_| errors.is_empty()) {
                errors.insert("terms".into(), e);
            }
            contracts(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

pub async fn contract_retire(State(state): State<AppState>, posted: Posted) -> Response {
    let user = posted.user.clone();
    if user.caller.role != Role::Admin {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let Ok(contract_id) = ContractId::parse(posted.get("id").unwrap_or("")) else {
        return Redirect::to("/console/admin/contracts").into_response();
    };
    match state.registry.execute(RegistryCommand::RetireContract { contract_id }, &context(&user)).await {
        Ok(_) => Redirect::to("/console/admin/contracts").into_response(),
        Err(failure) => {
            contracts(&state, &user, HashMap::new(), registry_errors(failure, l), StatusCode::CONFLICT).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Canned replies

pub async fn replies_page(State(state): State<AppState>, user: StaffUser) -> Response {
    replies(&state, &user, HashMap::new(), Errors::new(), StatusCode::OK).await
}

async fn replies(
    state: &AppState,
    user: &StaffUser,
    values: HashMap<String, String>,
    errors: Errors,
    status: StatusCode,
) -> Response {
    if user.caller.role != Role::Admin {
        return forbidden(state, user).await;
    }
    let l = user.language;
    let rows: Vec<(String, String, String, String, bool)> = sql::fetch(
        &state.database,
        "SELECT id, title, language, body, retired FROM canned_replies ORDER BY retired, language, title",
        vec![],
    )
    .await
    .unwrap_or_default();
    let v = |k: &str| values.get(k).cloned().unwrap_or_default();
    let body_error = errors.get("body");
    let content = html! {
        h1 { (tr(l, "Sablon válaszok", "Canned replies")) }
        table.plain {
            thead { tr { th scope="col" { "Id" } th scope="col" { (tr(l, "Cím", "Title")) } th scope="col" { (tr(l, "Nyelv", "Language")) } th scope="col" { (tr(l, "Szöveg", "Text")) } th scope="col" { (tr(l, "Állapot", "State")) } } }
            tbody {
                @for (id, title, language, body, retired) in &rows {
                    tr { td { (id) } td { (title) } td { (language) } td { (body.chars().take(120).collect::<String>()) } td { (if *retired { tr(l, "visszavonva", "retired") } else { tr(l, "él", "live") }) } }
                }
            }
        }
        h2 { (tr(l, "Sablon felvétele vagy módosítása (azonos id: módosítás)", "Add or change a reply (same id: change)")) }
        (form_error(&errors))
        form.stack method="post" action="/console/admin/replies" {
            input type="hidden" name="csrf" value=(user.csrf);
            (field("reply-id", "id", "Id", &v("id"), &errors, "text", true))
            (field("reply-title", "title", tr(l, "Cím", "Title"), &v("title"), &errors, "text", true))
            label for="reply-language" { (tr(l, "Nyelv", "Language")) }
            select #reply-language name="language" {
                option value="hu" selected[v("language") != "en"] { "Magyar" }
                option value="en" selected[v("language") == "en"] { "English" }
            }
            label for="reply-body" { (tr(l, "Szöveg", "Text")) " *" }
            textarea #reply-body name="body" required aria-invalid=[body_error.map(|_| "true")] aria-describedby=[body_error.map(|_| "reply-body-error")] { (v("body")) }
            @if let Some(e) = body_error { p.error #reply-body-error { (e) } }
            label for="reply-retired" {
                input #reply-retired type="checkbox" name="retired" value="true" checked[v("retired") == "true"];
                " " (tr(l, "Visszavonva (nem kínáljuk fel)", "Retired (no longer offered)"))
            }
            p { button type="submit" { (tr(l, "Mentés", "Save")) } }
        }
    };
    page(state, user, "replies", tr(l, "Sablon válaszok", "Canned replies"), content, status).await
}

pub async fn reply_save(State(state): State<AppState>, posted: Posted) -> Response {
    let user = posted.user.clone();
    if user.caller.role != Role::Admin {
        return forbidden(&state, &user).await;
    }
    let l = user.language;
    let values: HashMap<String, String> = posted.fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let mut errors = Errors::new();
    let id = posted.get("id").unwrap_or("").to_owned();
    if id.is_empty() || id.len() > 100 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        errors.insert(
            "id".into(),
            tr(l, "1–100 betű, szám, '-', '_' vagy '.'.", "1-100 letters, digits, '-', '_' or '.'.").into(),
        );
    }
    let title = posted.get("title").unwrap_or("").to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        errors.insert("title".into(), tr(l, "1–200 karakter.", "1 to 200 characters.").into());
    }
    let body = posted.raw("body").unwrap_or("").to_owned();
    if let Err(e) = ticket_domain::vocabulary::MessageBody::parse(&body) {
        errors.insert("body".into(), super::labels::problem(&e.problem, l));
    }
    if !errors.is_empty() {
        return replies(&state, &user, values, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let language = if posted.get("language") == Some("en") { "en" } else { "hu" };
    let saved = sql::execute(
        &state.database,
        "INSERT INTO canned_replies (id, title, language, body, retired, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, language = excluded.language, body = excluded.body, \
         retired = excluded.retired, updated_at = excluded.updated_at",
        vec![
            id.into(),
            title.into(),
            language.into(),
            body.into(),
            posted.get("retired").is_some().into(),
            state.service.clock().now().timestamp_micros().into(),
        ],
    )
    .await;
    match saved {
        Ok(_) => Redirect::to("/console/admin/replies").into_response(),
        Err(error) => {
            let mut errors = Errors::new();
            errors.insert("form".into(), error.to_string());
            replies(&state, &user, values, errors, StatusCode::INTERNAL_SERVER_ERROR).await
        }
    }
}
