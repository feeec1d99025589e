//! The HTTP API (`/api/v1`), JSON in and out, errors as RFC 9457 problem+json.
//!
//! - [`tickets`]: intake, workflow commands, the ticket, its history.
//! - [`queues`]: the agents' work lists (read models).
//! - [`stats`]: the complaint statistics (JSON or CSV).
//! - [`audit`]: the export of complaints with their histories.
//! - [`extract`]: strict JSON bodies, the caller, `If-Match`, `Idempotency-Key`.
//! - [`problem`]: the one error type.
//! - [`openapi`]: the OpenAPI 3.1 document, served and checked in as `schemas/openapi.json`.

pub mod audit;
pub mod contact;
pub mod extract;
pub mod intake;
pub mod openapi;
pub mod problem;
pub mod queues;
pub mod registry;
pub mod stats;
pub mod subjects;
pub mod tickets;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use event_store::Database;
use serde::Serialize;
use ticket_app::TicketService;
use utoipa::ToSchema;

use problem::InternalDetail;

/// The largest request body accepted.
pub const REQUEST_BODY_BYTES_MAX: usize = 256 * 1024;

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<TicketService>,
    pub database: Database,
    pub projections: Arc<Vec<(&'static str, ticket_projections::SharedStatus)>>,
    /// The background jobs' leases (PostgreSQL), for `/readyz` and `/metrics`.
    pub leases: Option<event_store::lease::Leases>,
    /// Renders `/metrics` (`None`: no recorder in this process, as in unit tests).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// `--metrics-token`: the bearer token that reads `/metrics` on the service's address.
    pub metrics_token: Option<Arc<str>>,
    pub tokens: Arc<crate::auth::TokenCache>,
    /// The statistics' days, decoded, between reports.
    pub stats_days: Arc<ticket_projections::statistics::query::DayCache>,
    /// SLA compliance reports, while the clocks, the tickets and the registry stand still.
    pub sla_reports: Arc<stats::SlaReports>,
    /// The contact form's settings, attachment store and abuse limits.
    pub intake: Arc<crate::intake::PublicIntake>,
    /// E-mail intake (threading, attachments) and its largest message.
    pub mail_intake: Arc<ticket_mail::intake::MailIntake>,
    pub mail_intake_max_bytes: usize,
    /// Contracts and divisions.
    pub registry: Arc<ticket_app::registry::RegistryService>,
    /// The desk's business calendar (business time left in queues).
    pub calendar: Arc<ticket_domain::calendar::BusinessCalendar>,
    /// Ticket numbers to ids, reading our own writes.
    pub numbers: Arc<crate::numbers::Numbers>,
    /// How long an `Idempotency-Key` claim may go unanswered before a repeat takes it over.
    pub idempotency_stale: std::time::Duration,
    /// The staff console's sessions, sign-in limits and live updates.
    pub console: Arc<crate::console::Console>,
    /// The ledger's signing key (checkpoints on demand), if configured.
    pub ledger_key: Option<Arc<ticket_ledger::checkpoint::LedgerKey>>,
    /// The store as it holds events (personal parts sealed): what the ledger's proofs hash.
    pub raw_store: event_store::SharedStore,
    /// Erasure, legal holds and retention (the data keys, and where copies are kept).
    pub privacy: Arc<crate::privacy::Privacy>,
    /// Calendar days to answer a complaint (`--complaint-answer-days`), for the complaint record.
    pub complaint_answer_days: Option<u32>,
    /// The company as its mail is signed (`--mail-from`'s name), for the complaint record.
    pub company: Arc<str>,
}

/// The whole HTTP application, without a socket (tests drive it directly too).
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/tickets", post(tickets::create_ticket))
        .route("/tickets/{id}", get(tickets::get_ticket))
        .route("/tickets/{id}/events", get(tickets::get_events))
        .route("/tickets/{id}/sla", get(tickets::get_sla))
        .route("/tickets/{id}/complaint-record", get(tickets::complaint_record))
        .route("/tickets/{id}/attachments/{sha256}", get(tickets::get_attachment))
        .route("/contact", post(contact::contact))
        .route(
            "/intake/email",
            post(intake::email).layer(axum::extract::DefaultBodyLimit::max(state.mail_intake_max_bytes)),
        )
        .route("/tickets/{id}/acknowledge", post(tickets::acknowledge))
        .route("/tickets/{id}/investigate", post(tickets::investigate))
        .route("/tickets/{id}/escalate", post(tickets::escalate))
        .route("/tickets/{id}/escalation-answer", post(tickets::escalation_answer))
        .route("/tickets/{id}/resolve", post(tickets::resolve))
        .route("/tickets/{id}/close", post(tickets::close))
        .route("/tickets/{id}/reopen", post(tickets::reopen))
        .route("/tickets/{id}/assign", post(tickets::assign))
        .route("/tickets/{id}/priority", post(tickets::prioritise))
        .route("/tickets/{id}/contract", post(tickets::link_contract))
        .route("/contracts", get(registry::list_contracts))
        .route("/contracts/{contract_id}", axum::routing::put(registry::put_contract))
        .route("/contracts/{contract_id}/retire", post(registry::retire_contract))
        .route("/default-contract", axum::routing::put(registry::set_default_contract))
        .route("/divisions", get(registry::list_divisions))
        .route("/divisions/{division_id}", axum::routing::put(registry::put_division))
        .route("/staff", get(registry::list_staff))
        .route("/staff/{name}", axum::routing::put(registry::put_staff))
        .route("/registry/history", get(registry::history))
        .route("/tickets/{id}/reclassify", post(tickets::reclassify))
        .route("/tickets/{id}/out-of-scope", post(tickets::out_of_scope))
        .route("/tickets/{id}/notes", post(tickets::notes))
        .route("/tickets/{id}/replies", post(tickets::replies))
        .route("/tickets/{id}/survey-sent", post(tickets::survey_sent))
        .route("/tickets/{id}/survey-answer", post(tickets::survey_answer))
        .route("/queues/{queue}", get(queues::get_queue))
        .route("/stats/summary", get(stats::summary))
        .route("/stats/divisions", get(stats::divisions))
        .route("/stats/root-causes", get(stats::root_causes))
        .route("/stats/sla", get(stats::sla))
        .route("/audit/export", get(audit::export))
        .route("/audit/checkpoint", get(audit::checkpoint).post(audit::sign_checkpoint))
        .route("/audit/tickets/{id}/proof", get(audit::proof))
        .route("/audit/consistency", get(audit::consistency))
        .route("/subjects/export", get(subjects::export))
        .route("/subjects/erase", post(subjects::erase))
        .route("/openapi.json", get(openapi::serve));
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/survey/{token}", get(crate::pages::survey::show).post(crate::pages::survey::answer))
        .route(
            "/contact",
            get(crate::pages::contact::show)
                .post(crate::pages::contact::submit_form)
                .layer(axum::extract::DefaultBodyLimit::max(state.intake.body_max)),
        )
        .merge(crate::console::routes())
        .fallback(|| async { problem::from_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async { problem::from_status(StatusCode::METHOD_NOT_ALLOWED) })
        .layer(middleware::from_fn(crate::console::security_headers))
        .layer(middleware::from_fn(log_requests))
        .layer(middleware::from_fn(crate::metrics::track))
        .with_state(state)
}

/// The `--metrics-listen` address's app: `/metrics` without a token (only the scraper reaches
/// that address).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::scrape_open))
        .fallback(|| async { problem::from_status(StatusCode::NOT_FOUND) })
        .with_state(state)
}

/// `GET /`: whoever opens the service's own address (a customer's browser) gets the contact
/// form, by `303 See Other` to `/contact`, with the query kept (`/?lang=en`).
async fn home(uri: axum::http::Uri) -> Response {
    let location = match uri.query() {
        Some(query) => format!("/contact?{query}"),
        None => "/contact".to_owned(),
    };
    // A parsed URI's query holds only visible ASCII, so it is always a valid header value.
    let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/contact"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Logs each request once, with the internal detail of a 5xx (never sent to the client).
async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(%method, %path, status = status.as_u16(), elapsed_ms, %detail, "request failed");
    } else if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), elapsed_ms, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms, "request");
    }
    // Framework rejections that escaped our extractors still leave as problem+json.
    let is_problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json")
            || v.as_bytes().starts_with(b"application/json")
            || v.as_bytes().starts_with(b"text/html")
    });
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        return problem::from_status(status).into_response();
    }
    response
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` (everything follows the log), `degraded` (ready, but a projection has stopped on
    /// an event it cannot apply: see `projections`), or `not_ready` (the store does not answer).
    pub status: String,
    pub store: String,
    /// The oldest append of this store still in flight (PostgreSQL), which readers wait for.
    pub oldest_append_in_flight: Option<AppendInFlightHealth>,
    pub projections: Vec<ProjectionHealth>,
    /// The background jobs' leases (PostgreSQL: one leader per job among the instances);
    /// `null` on SQLite, where this one instance runs every job.
    pub leases: Option<LeasesHealth>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeasesHealth {
    /// This instance's name in `job_leases`.
    pub holder: String,
    /// The jobs this instance leads now.
    pub leading: Vec<String>,
    /// Every job's lease: who holds it, its epoch, and how long until it expires.
    pub jobs: Vec<LeaseHealth>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseHealth {
    pub job: String,
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it expires by the database's clock (negative: expired or released).
    pub expires_in_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppendInFlightHealth {
    /// The database backend's process id (`pg_stat_activity.pid`).
    pub backend: i32,
    pub database: String,
    pub age_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionHealth {
    pub name: String,
    /// Where the read model's checkpoint stands (a standby reads it from the database).
    pub position: i64,
    /// Whether this instance applies the log to it (false: another instance leads the job).
    pub leading: bool,
    pub events_applied: u64,
    /// Why the projection stopped (an event it cannot apply); `null` while it runs.
    pub failed: Option<String>,
    /// Times the store interrupted it (an outage, a deadlock) and it started again by itself.
    pub retries: u64,
    pub last_error: Option<String>,
    /// From an event's recording to the commit of the read model showing it, for the events
    /// recorded since the projection started following the log.
    pub lag: Lag,
}

/// Lag quantiles in milliseconds; `null` before any live event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lag {
    pub events: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(),
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// Ready: the store answers and its schema is migrated. Projections' positions, lag and
/// failures are in the body (a stopped one makes the status `degraded`, still 200).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.service.store().ping().await;
    let mut projections: Vec<ProjectionHealth> = state
        .projections
        .iter()
        .map(|(name, status)| {
            let status = status.lock().expect("status lock").clone();
            ProjectionHealth {
                name: (*name).to_owned(),
                position: status.position.0,
                leading: status.leading,
                events_applied: status.events_applied,
                lag: {
                    let lag = &status.lag_us;
                    let ms = |us: u64| (lag.len() > 0).then(|| (us as f64 / 10.0).round() / 100.0);
                    Lag {
                        events: lag.len(),
                        p50_ms: ms(lag.value_at_quantile(0.5)),
                        p99_ms: ms(lag.value_at_quantile(0.99)),
                        max_ms: ms(lag.max()),
                    }
                },
                failed: status.failed,
                retries: status.retries,
                last_error: status.last_error,
            }
        })
        .collect();
    for projection in projections.iter_mut().filter(|p| !p.leading) {
        if let Ok(position) = ticket_projections::checkpoint_of(&state.database, &projection.name).await {
            projection.position = position.0;
        }
    }
    let leases = match &state.leases {
        Some(leases) => Some(LeasesHealth {
            holder: leases.holder().to_owned(),
            leading: leases.held().into_iter().map(|(job, _)| job.to_owned()).collect(),
            jobs: leases
                .rows()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|r| LeaseHealth { job: r.job, holder: r.holder, epoch: r.epoch, expires_in_ms: r.expires_in_ms })
                .collect(),
        }),
        None => None,
    };
    // Ready means the store answers: a projection stopped on one event is the same on every
    // instance, and taking them all out of the load balancer would stop intake too. It stays in
    // the body (and was logged as an error when it stopped).
    let ready = store.is_ok();
    let degraded = projections.iter().any(|p| p.failed.is_some());
    let body = Readiness {
        status: match (ready, degraded) {
            (false, _) => "not_ready".into(),
            (true, true) => "degraded".into(),
            (true, false) => "ready".into(),
        },
        store: match store {
            Ok(()) => "ok".into(),
            Err(error) => error.to_string(),
        },
        oldest_append_in_flight: state.service.store().oldest_append_in_flight().map(|append| AppendInFlightHealth {
            backend: append.backend,
            database: append.database,
            age_seconds: (append.age.as_secs_f64() * 1000.0).round() / 1000.0,
        }),
        projections,
        leases,
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
