//! Signing in and out, the session cookie, and the checks every console POST passes: the
//! request comes from our own origin (`Sec-Fetch-Site`, `Origin`) and carries the session's
//! CSRF token. A GET never changes state.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use ticket_domain::vocabulary::{Language, Role, StaffName};

use crate::accounts::{self, SessionLimits, SignInLimiter};
use crate::auth::Caller;
use crate::http::AppState;
use crate::pages::{lang_code, tr};

use super::{assets, respond};

/// The console's settings and its per-process state.
pub struct Console {
    pub limits: SessionLimits,
    /// `--public-url` is https: the cookie is `Secure` with the `__Host-` prefix.
    pub secure: bool,
    /// The origin of `--public-url` (besides the request's own host), for the origin check.
    pub public_origin: Option<String>,
    pub limiter: SignInLimiter,
    pub live: std::sync::Arc<super::live::Live>,
    /// The open tickets per status as of a `ticket_view` checkpoint, shared by every page
    /// until the read model moves (counting is a scan; reading the checkpoint is not).
    status_counts: Mutex<Option<(i64, SharedCounts)>>,
}

impl Console {
    pub fn new(limits: SessionLimits, public_url: Option<&str>) -> Self {
        let secure = public_url.is_some_and(|u| u.starts_with("https://"));
        let public_origin = public_url.and_then(|u| {
            let (scheme, rest) = u.split_once("://")?;
            let host = rest.split('/').next()?;
            Some(format!("{scheme}://{host}"))
        });
        Self {
            limits,
            secure,
            public_origin,
            // 5 failures per account and 20 per address in 15 minutes.
            limiter: SignInLimiter::new(Duration::from_secs(15 * 60), 5, 20),
            live: std::sync::Arc::default(),
            status_counts: Mutex::new(None),
        }
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure { "__Host-ticketd_session" } else { "ticketd_session" }
    }

    fn cookie(&self, token: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value =
            format!("{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", self.cookie_name());
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(""))
    }

    pub fn cached_status_counts(&self, checkpoint: i64) -> Option<SharedCounts> {
        let counts = self.status_counts.lock().expect("counts lock");
        counts.as_ref().filter(|(at, _)| *at == checkpoint).map(|(_, c)| c.clone())
    }

    pub fn store_status_counts(&self, checkpoint: i64, counts: SharedCounts) {
        *self.status_counts.lock().expect("counts lock") = Some((checkpoint, counts));
    }
}

/// The counts every user's navigation shares: open tickets per status, escalated per division.
#[derive(Debug, Clone, Default)]
pub struct SharedCounts {
    pub by_status: Vec<(String, i64)>,
    pub by_division: Vec<(String, i64)>,
    /// The assignees of the open restricted tickets, one entry a ticket (taken off "mine").
    pub restricted_assignees: Vec<String>,
}

/// A signed-in member of staff.
#[derive(Debug, Clone)]
pub struct StaffUser {
    /// Who their commands' events name: the same actor the API records (name and role).
    pub caller: Caller,
    pub name: String,
    pub display_name: String,
    pub language: Language,
    pub csrf: String,
    pub session_hash: String,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Why a request has no user: not signed in (or expired), or the store failed.
pub enum NoUser {
    SignIn,
    Failed(String),
}

/// The user of a request's session cookie, if the session lives and the account may sign in.
pub async fn user_of(state: &AppState, headers: &HeaderMap) -> Result<StaffUser, NoUser> {
    let console = &state.console;
    let Some(token) = cookie_value(headers, console.cookie_name()) else { return Err(NoUser::SignIn) };
    let now = state.service.clock().now();
    let session = accounts::session(&state.database, token, now, console.limits)
        .await
        .map_err(|e| NoUser::Failed(e.to_string()))?
        .ok_or(NoUser::SignIn)?;
    let registry = state.registry.current().await.map_err(|e| NoUser::Failed(e.to_string()))?;
    let entry =
        StaffName::parse(&session.name).ok().and_then(|name| registry.staff.get(&name).map(|t| (name, t.clone())));
    let Some((name, terms)) = entry.filter(|(_, t)| !t.disabled) else {
        // Disabled or removed since: the session ends now.
        let _ = accounts::end_session(&state.database, &session.token_hash).await;
        return Err(NoUser::SignIn);
    };
    let Some(role) = terms.role.filter(|r| *r != Role::Intake) else { return Err(NoUser::SignIn) };
    Ok(StaffUser {
        caller: Caller { name: session.name.clone(), role },
        display_name: terms.shown_name(&name).to_owned(),
        name: session.name,
        language: terms.language.unwrap_or_default(),
        csrf: session.csrf_token,
        session_hash: session.token_hash,
    })
}

fn to_sign_in(path_and_query: &str) -> Response {
    let next: String = url_escape(path_and_query);
    Redirect::to(&format!("/console/login?next={next}")).into_response()
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn failure(detail: &str) -> Response {
    tracing::error!(detail, "console request failed");
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        plain_page(
            Language::Hu,
            "Hiba / Error",
            "Valami elromlott; próbálja újra. / Something went wrong; please try again.",
        ),
    )
}

/// A page outside the signed-in layout (sign-in, refusals before a user is known).
pub fn plain_page(language: Language, title: &str, text: &str) -> maud::Markup {
    html! {
        (maud::DOCTYPE)
        html lang=(lang_code(language)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href=(assets::url("console.css"));
            }
            body { main.login { h1 { (title) } p role="alert" { (text) } p { a href="/console" { "ticketd" } } } }
        }
    }
}

impl FromRequestParts<AppState> for StaffUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match user_of(state, &parts.headers).await {
            Ok(user) => Ok(user),
            Err(NoUser::SignIn) => {
                Err(to_sign_in(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console")))
            }
            Err(NoUser::Failed(detail)) => Err(failure(&detail)),
        }
    }
}

/// Refuses a state change that does not come from our own pages' origin: a browser says where
/// a request comes from in `Sec-Fetch-Site` and `Origin`.
pub fn check_origin(headers: &HeaderMap, console: &Console) -> Result<(), Response> {
    let forbidden = |why: &str| {
        tracing::warn!(why, "console POST refused");
        Err(respond(
            StatusCode::FORBIDDEN,
            plain_page(
                Language::Hu,
                "Elutasítva / Refused",
                "Ez a kérés nem a konzol saját oldaláról jött. / This request did not come from the console's own pages.",
            ),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return forbidden("Sec-Fetch-Site is not same-origin");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let own = [format!("http://{host}"), format!("https://{host}")];
        let allowed = own.iter().any(|o| o == origin) || console.public_origin.as_deref() == Some(origin);
        if !allowed {
            return forbidden("Origin is another site");
        }
    }
    Ok(())
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A console POST: from our origin, by a signed-in user, with the session's CSRF token. Its
/// fields as sent (a name may repeat: the selected rows of a bulk action).
pub struct Posted {
    pub user: StaffUser,
    pub fields: Vec<(String, String)>,
    pub path: String,
}

impl Posted {
    /// A field's value, trimmed; `None` when missing or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }
    /// A field's value as typed (text areas keep their spacing).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

pub fn csrf_refused(language: Language) -> Response {
    respond(
        StatusCode::FORBIDDEN,
        plain_page(
            language,
            tr(language, "Elutasítva", "Refused"),
            tr(
                language,
                "A kérés biztonsági jelzője hiányzik vagy lejárt. Töltse be újra az oldalt, és próbálja újra.",
                "The request's security token is missing or out of date. Reload the page and try again.",
            ),
        ),
    )
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        check_origin(&parts.headers, &state.console)?;
        let user = StaffUser::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, crate::http::REQUEST_BODY_BYTES_MAX).await.map_err(|_| {
            respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                plain_page(
                    user.language,
                    "413",
                    tr(user.language, "A beküldött űrlap túl nagy.", "The form sent is too large."),
                ),
            )
        })?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let token = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !same_secret(token, &user.csrf) {
            return Err(csrf_refused(user.language));
        }
        Ok(Self { user, fields, path: parts.uri.path().to_owned() })
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    lang: Option<String>,
}

/// Where to go after signing in: a console path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/console".to_owned(),
    }
}

fn login_form(language: Language, next: &str, name: &str, error: Option<&str>) -> maud::Markup {
    let l = language;
    html! {
        (maud::DOCTYPE)
        html lang=(lang_code(l)) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (tr(l, "Bejelentkezés", "Sign in")) " · ticketd" }
                link rel="stylesheet" href=(assets::url("console.css"));
            }
            body {
                main.login {
                    h1 { (tr(l, "Bejelentkezés", "Sign in")) }
                    @if let Some(error) = error {
                        p.alert #login-error role="alert" { (error) }
                    }
                    form method="post" action="/console/login" {
                        input type="hidden" name="next" value=(next);
                        input type="hidden" name="lang" value=(lang_code(l));
                        label for="name" { (tr(l, "Felhasználónév", "User name")) }
                        input #name type="text" name="name" value=(name) autocomplete="username" required autofocus[name.is_empty()]
                            aria-describedby=[error.map(|_| "login-error")];
                        label for="password" { (tr(l, "Jelszó", "Password")) }
                        input #password type="password" name="password" autocomplete="current-password" required;
                        label for="code" { (tr(l, "Egyszer használatos kód (ha kétlépcsős azonosítást használ)", "One-time code (if you use a second factor)")) }
                        input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*";
                        button type="submit" { (tr(l, "Bejelentkezés", "Sign in")) }
                    }
                    p { a href={"/console/login?lang=" (if l == Language::Hu { "en" } else { "hu" }) "&next=" (url_escape(next))} lang=(if l == Language::Hu { "en" } else { "hu" }) { (tr(l, "English", "Magyar")) } }
                }
            }
        }
    }
}

fn query_language(lang: Option<&str>) -> Language {
    if lang == Some("en") { Language::En } else { Language::Hu }
}

pub async fn login_page(State(state): State<AppState>, Query(query): Query<LoginQuery>, request: Request) -> Response {
    let next = safe_next(query.next.as_deref());
    // Already signed in: straight on.
    if user_of(&state, request.headers()).await.is_ok() {
        return Redirect::to(&next).into_response();
    }
    respond(StatusCode::OK, login_form(query_language(query.lang.as_deref()), &next, "", None))
}

pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let client: Option<IpAddr> = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    if let Err(refused) = check_origin(&parts.headers, &state.console) {
        return refused;
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return respond(StatusCode::PAYLOAD_TOO_LARGE, plain_page(Language::Hu, "413", "Too large"));
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
    let language = query_language(Some(field("lang")));
    let next = safe_next(Some(field("next")));
    let name = field("name").trim().to_owned();
    let password = field("password").to_owned();
    let code = field("code").to_owned();
    let console = &state.console;
    if let Some(wait) = console.limiter.blocked(&name, client) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let text = match language {
            Language::Hu => format!("Túl sok sikertelen próbálkozás. Próbálja újra {minutes} perc múlva."),
            Language::En => format!("Too many failed attempts. Try again in {minutes} min."),
        };
        let mut response = respond(StatusCode::TOO_MANY_REQUESTS, login_form(language, &next, &name, Some(&text)));
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return response;
    }
    // Read fresh (not the 5 s cache): an account disabled a moment ago signs in no more.
    let registry = match state.registry.load().await {
        Ok(registry) => registry,
        Err(error) => return failure(&error.to_string()),
    };
    let account = StaffName::parse(&name)
        .ok()
        .and_then(|n| registry.staff.get(&n).cloned())
        .filter(|t| !t.disabled && t.role.is_some_and(|r| r != Role::Intake));
    let credentials = match account {
        Some(_) => match accounts::credentials(&state.database, &name).await {
            Ok(found) => found,
            Err(error) => return failure(&error.to_string()),
        },
        None => None,
    };
    // A wrong name costs what a wrong password costs: the decoy hash is checked instead.
    let (hash, totp) = credentials.clone().unwrap_or_else(|| (accounts::decoy_hash().to_owned(), None));
    let checked =
        tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &password)).await.unwrap_or(false);
    let now = state.service.clock().now();
    let second_factor = match &totp {
        Some(secret) => accounts::check_totp(secret, &code, now),
        None => true,
    };
    if !(checked && credentials.is_some() && second_factor) {
        console.limiter.failed(&name, client);
        let text = tr(
            language,
            "A felhasználónév, a jelszó vagy a kód nem megfelelő.",
            "The user name, password or code is not right.",
        );
        return respond(StatusCode::UNAUTHORIZED, login_form(language, &next, &name, Some(text)));
    }
    console.limiter.succeeded(&name);
    if let Err(error) = accounts::purge_expired(&state.database, now, console.limits).await {
        tracing::warn!(%error, "could not delete expired console sessions");
    }
    let token = match accounts::create_session(&state.database, &name, now).await {
        Ok(token) => token,
        Err(error) => return failure(&error.to_string()),
    };
    tracing::info!(user = %name, "signed in to the console");
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, console.cookie(&token, console.limits.absolute.num_seconds()));
    response
}

pub async fn logout(State(state): State<AppState>, posted: Posted) -> Response {
    let _ = accounts::end_session(&state.database, &posted.user.session_hash).await;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, state.console.cookie("", 0));
    response
}

/// The user's language, kept in their staff entry.
pub async fn set_language(State(state): State<AppState>, posted: Posted) -> Response {
    let language = if posted.get("language") == Some("en") { Language::En } else { Language::Hu };
    let back = "/console".to_owned();
    if let Ok(name) = StaffName::parse(&posted.user.name)
        && let Ok(registry) = state.registry.load().await
        && let Some(terms) = registry.staff.get(&name)
    {
        let mut terms = terms.clone();
        terms.language = Some(language);
        let command = ticket_domain::registry::RegistryCommand::SaveStaff { name, terms };
        let context = ticket_app::CommandContext::new(ticket_domain::vocabulary::Actor::Staff {
            name: posted.user.name.clone(),
            role: posted.user.caller.role,
        });
        let _ = state.registry.execute(command, &context).await;
    }
    Redirect::to(&back).into_response()
}
