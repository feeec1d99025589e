//! `/metrics`: what an operator alerts on, in the Prometheus text format.
//!
//! Counters and histograms are recorded where things happen, through the `metrics` facade
//! (HTTP requests here, commands in ticket-app, appends and group-commit batches in the event
//! store, SLA warnings and breaches in the scheduler), and rendered by
//! `metrics-exporter-prometheus`. Gauges of state (projections, leases, the outbox, the
//! PostgreSQL transaction horizon, the ledger's last checkpoint) are read when scraped.
//!
//! Names follow Prometheus' conventions: the `ticketd_` prefix, base units (seconds), `_total`
//! on counters. Labels carry route templates, command kinds, job and projection names and
//! statuses only: never an id, an address or anything personal.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::AppState;

/// The request duration histogram's buckets, 5 ms to 10 s.
pub const REQUEST_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// An append's duration, 0.5 ms to 5 s.
const APPEND_BUCKETS: [f64; 11] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];
/// A group commit's appends.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process's recorder (once per process); its handle renders `/metrics`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("ticketd_http_request_duration_seconds".into()), &REQUEST_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("ticketd_append_duration_seconds".into()), &APPEND_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("ticketd_append_batch_appends".into()), &BATCH_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("ticketd_http_requests_total", "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        "ticketd_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request duration, by method and route template"
    );
    describe_counter!("ticketd_commands_total", "Ticket commands run, by command and outcome");
    describe_histogram!("ticketd_append_duration_seconds", Unit::Seconds, "Event store append duration");
    describe_histogram!("ticketd_append_batch_appends", "Appends written in one group commit");
    describe_counter!("ticketd_sla_warnings_total", "SLA warnings recorded by this instance's scheduler");
    describe_counter!("ticketd_sla_breaches_total", "SLA breaches recorded by this instance's scheduler");
    describe_gauge!("ticketd_projection_position", "The read model's checkpoint (a position in the global order)");
    describe_gauge!("ticketd_log_head_position", "The event log's highest committed position");
    describe_gauge!("ticketd_projection_behind", "1 while the read model has not applied the log's head");
    describe_gauge!(
        "ticketd_projection_lag_seconds",
        Unit::Seconds,
        "From an event's recording to the read model's commit, by quantile, over the events this instance applied"
    );
    describe_gauge!("ticketd_projection_failed", "1 when the projection stopped on an event it cannot apply");
    describe_gauge!("ticketd_job_leader", "1 when this instance leads the job (holds its lease)");
    describe_gauge!("ticketd_leases_held", "The background jobs this instance leads");
    describe_gauge!("ticketd_outbox_pending", "Mails waiting to be sent");
    describe_gauge!("ticketd_outbox_oldest_pending_age_seconds", Unit::Seconds, "The oldest waiting mail's age");
    describe_gauge!("ticketd_outbox_failed", "Mails the mail server refused for good");
    describe_gauge!(
        "ticketd_postgres_xmin_horizon_age_seconds",
        Unit::Seconds,
        "The age of the oldest transaction holding back the database's xmin horizon (PostgreSQL)"
    );
    describe_gauge!(
        "ticketd_ledger_checkpoint_age_seconds",
        Unit::Seconds,
        "Time since the ledger's last signed checkpoint"
    );
}

/// Records each request by its route template (never its path: ids stay out of labels).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method: &'static str = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    // One span per request (exported as a trace with the `otel` feature): the route template,
    // never the path.
    let span = tracing::info_span!(
        "http.request",
        http.request.method = method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty
    );
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let status = response.status().as_u16().to_string();
    metrics::counter!("ticketd_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("ticketd_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Whether a scrape may read `/metrics`: with `--metrics-token`, only with that bearer token.
fn scrape_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.metrics_token else { return false };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| {
        use sha2::Digest;
        // Compared as digests: the time taken says nothing about the token.
        sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(expected.as_bytes())
    })
}

/// `GET /metrics` on the service's own address: with the scrape token only.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.metrics_token.is_none() {
        return crate::http::problem::ApiError::not_found(
            "metrics are served on --metrics-listen, or here with --metrics-token",
        )
        .into_response();
    }
    if !scrape_allowed(&state, &headers) {
        let mut response = crate::http::problem::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The scrape token is missing or wrong",
            "send Authorization: Bearer <the --metrics-token>",
        )
        .into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    render(&state).await
}

/// `GET /metrics` on `--metrics-listen` (an address only the scraper reaches): no token.
pub async fn scrape_open(State(state): State<AppState>) -> Response {
    render(&state).await
}

async fn render(state: &AppState) -> Response {
    let Some(handle) = &state.metrics else {
        return crate::http::problem::ApiError::not_found("metrics are off").into_response();
    };
    refresh(state).await;
    // Histograms are drained into their buckets by the upkeep: run it before each render.
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Sets the gauges of state from the process and the database.
async fn refresh(state: &AppState) {
    use metrics::gauge;
    let head = ticket_projections::log_head(&state.database).await.ok();
    if let Some(head) = head {
        gauge!("ticketd_log_head_position").set(head as f64);
    }
    for (name, status) in state.projections.iter() {
        let status = status.lock().expect("status lock").clone();
        let position = if status.leading {
            status.position.0
        } else {
            ticket_projections::checkpoint_of(&state.database, name).await.map_or(status.position.0, |p| p.0)
        };
        let projection = *name;
        gauge!("ticketd_projection_position", "projection" => projection).set(position as f64);
        if let Some(head) = head {
            gauge!("ticketd_projection_behind", "projection" => projection).set(f64::from(u8::from(position < head)));
        }
        gauge!("ticketd_projection_failed", "projection" => projection)
            .set(f64::from(u8::from(status.failed.is_some())));
        if !status.lag_us.is_empty() {
            for (quantile, label) in [(0.5, "0.5"), (0.99, "0.99")] {
                let seconds = status.lag_us.value_at_quantile(quantile) as f64 / 1e6;
                gauge!("ticketd_projection_lag_seconds", "projection" => projection, "quantile" => label).set(seconds);
            }
        }
    }
    if let Some(leases) = &state.leases {
        let held = leases.held();
        gauge!("ticketd_leases_held").set(held.len() as f64);
        if let Ok(rows) = leases.rows().await {
            for row in rows {
                let mine = held.iter().any(|(job, _)| *job == row.job);
                gauge!("ticketd_job_leader", "job" => row.job).set(f64::from(u8::from(mine)));
            }
        }
    }
    if let Ok(outbox) = ticket_mail::outbox::health(&state.database).await {
        gauge!("ticketd_outbox_pending").set(outbox.pending as f64);
        gauge!("ticketd_outbox_oldest_pending_age_seconds").set(outbox.oldest_pending_age_seconds);
        gauge!("ticketd_outbox_failed").set(outbox.failed as f64);
    }
    if let event_store::Database::Postgres(pool) = &state.database {
        let age: Result<f64, _> = sqlx::query_scalar(
            "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(xact_start)), 0)::float8 FROM pg_stat_activity \
             WHERE backend_xmin IS NOT NULL AND datname = current_database()",
        )
        .fetch_one(pool)
        .await;
        if let Ok(age) = age {
            gauge!("ticketd_postgres_xmin_horizon_age_seconds").set(age.max(0.0));
        }
    }
    if let Ok(Some(signed_at)) = ticket_projections::ledger::latest_checkpoint_time(&state.database).await {
        let age = (state.service.clock().now() - signed_at).num_milliseconds() as f64 / 1000.0;
        gauge!("ticketd_ledger_checkpoint_age_seconds").set(age.max(0.0));
    }
}
