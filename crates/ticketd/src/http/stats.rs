//! `/api/v1/stats/...`: the complaint statistics for quality managers, auditors and admins,
//! as JSON or, with `Accept: text/csv`, as CSV. Every figure is defined in
//! `projections/STATISTICS.md`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::TimeZone;
use chrono::{Datelike, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use ticket_domain::vocabulary::Role;
use ticket_projections::sla_clocks::{ComplianceGroup, ComplianceRow, compliance};
use ticket_projections::statistics::facts::REPORTING_TIME_ZONE;
use ticket_projections::statistics::query::{
    self, Dimension, DivisionRow, Period, REPORT_DAYS_MAX, RootCauseRow, StatsQuery, SummaryRow,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::ApiError;
use crate::auth::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// The first day (YYYY-MM-DD, Europe/Budapest). Default: the first day of the month eleven
    /// months before `to`'s.
    pub from: Option<NaiveDate>,
    /// The last day, included (YYYY-MM-DD). Default: today.
    pub to: Option<NaiveDate>,
    /// Bucket size (default `month`).
    pub period: Option<Period>,
    /// Group each bucket's rows by this dimension.
    pub by: Option<Dimension>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// The first day (YYYY-MM-DD, Europe/Budapest). Default: the first day of the month eleven
    /// months before `to`'s.
    pub from: Option<NaiveDate>,
    /// The last day, included (YYYY-MM-DD). Default: today.
    pub to: Option<NaiveDate>,
    /// Bucket size (default `month`).
    pub period: Option<Period>,
}

/// A report: what was asked, and its rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsReport<Row: ToSchema> {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: Period,
    pub by: Option<Dimension>,
    /// The calendar the days are counted in.
    pub time_zone: String,
    pub rows: Vec<Row>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "A query parameter is invalid", detail)
}

fn allowed(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Role::QualityManager | Role::Auditor | Role::Admin => Ok(()),
        Role::Agent | Role::Intake => {
            Err(ApiError::forbidden("statistics are for quality managers, auditors and admins"))
        }
    }
}

fn stats_query(
    now: chrono::DateTime<Utc>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    period: Option<Period>,
    by: Option<Dimension>,
) -> Result<StatsQuery, ApiError> {
    let to = to.unwrap_or_else(|| now.with_timezone(&REPORTING_TIME_ZONE).date_naive());
    let from = match from {
        Some(from) => from,
        None => to
            .with_day(1)
            .and_then(|first| first.checked_sub_months(Months::new(11)))
            .ok_or_else(|| invalid("`to` is too early for a default `from`; give `from`"))?,
    };
    let supported = |d: NaiveDate| (1900..=9999).contains(&d.year());
    if !supported(from) || !supported(to) {
        return Err(invalid("`from` and `to` must be days between the years 1900 and 9999"));
    }
    if to < from {
        return Err(invalid(format!("`to` ({to}) is before `from` ({from})")));
    }
    if (to - from).num_days() >= REPORT_DAYS_MAX {
        return Err(invalid(format!("a report covers at most {REPORT_DAYS_MAX} days; shorten it")));
    }
    Ok(StatsQuery { from, to, period: period.unwrap_or(Period::Month), by })
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv")))
}

fn respond<Row: Serialize + ToSchema>(
    headers: &HeaderMap,
    query: &StatsQuery,
    rows: Vec<Row>,
    file: &str,
) -> Result<Response, ApiError> {
    if wants_csv(headers) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in &rows {
            writer.serialize(row).map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
        }
        let body = writer.into_inner().map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
        let mut response = (StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        let disposition = format!("attachment; filename=\"{file}-{}-{}.csv\"", query.from, query.to);
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    Ok(axum::Json(StatsReport {
        from: query.from,
        to: query.to,
        period: query.period,
        by: query.by,
        time_zone: REPORTING_TIME_ZONE.name().to_owned(),
        rows,
    })
    .into_response())
}

/// Checks the caller and the period, and computes the report from the day cache.
async fn report(
    state: &AppState,
    caller: &Caller,
    (from, to, period, by): (Option<NaiveDate>, Option<NaiveDate>, Option<Period>, Option<Dimension>),
) -> Result<(StatsQuery, query::Report), ApiError> {
    allowed(caller)?;
    let query = stats_query(state.service.clock().now(), from, to, period, by)?;
    let days =
        state.stats_days.days(&state.database).await.map_err(|e| ApiError::from(ticket_app::AppError::Store(e)))?;
    let report = query::report(&days, &query);
    Ok((query, report))
}

fn parse<T>(query: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| invalid(e.body_text()))
}

/// Counts, durations, surveys and complaints per bucket (and group).
#[utoipa::path(
    get, path = "/api/v1/stats/summary", tag = "statistics",
    params(SummaryQuery),
    responses(
        (status = 200, description = "The summary rows, oldest bucket first (CSV with `Accept: text/csv`)", content((StatsReport<SummaryRow> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A query parameter is invalid (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Agents do not read statistics (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = parse(query)?;
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, asked.by)).await?;
    respond(&headers, &query, report.summary, "summary")
}

/// Escalations per division: answers, answer times, escalation rate.
#[utoipa::path(
    get, path = "/api/v1/stats/divisions", tag = "statistics",
    params(PeriodQuery),
    responses(
        (status = 200, description = "One row per bucket and division (CSV with `Accept: text/csv`)", content((StatsReport<DivisionRow> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A query parameter is invalid (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Agents do not read statistics (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn divisions(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<PeriodQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = parse(query)?;
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, None)).await?;
    respond(&headers, &query, report.divisions, "divisions")
}

/// The root causes of resolved complaints.
#[utoipa::path(
    get, path = "/api/v1/stats/root-causes", tag = "statistics",
    params(PeriodQuery),
    responses(
        (status = 200, description = "One row per bucket and root cause (CSV with `Accept: text/csv`)", content((StatsReport<RootCauseRow> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A query parameter is invalid (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Agents do not read statistics (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn root_causes(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<PeriodQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = parse(query)?;
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, None)).await?;
    respond(&headers, &query, report.root_causes, "root-causes")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlaQuery {
    /// The first day (YYYY-MM-DD, Europe/Budapest). Default: the first day of the month eleven
    /// months before `to`'s.
    pub from: Option<NaiveDate>,
    /// The last day, included (YYYY-MM-DD). Default: today.
    pub to: Option<NaiveDate>,
    /// Group the rows by contract, category, service area or priority.
    pub by: Option<ComplianceGroup>,
    /// Also bucket the rows by period (day, ISO week, month, quarter); default: one row per clock
    /// and group over the whole range.
    pub period: Option<Period>,
}

/// SLA compliance over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlaReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub by: Option<ComplianceGroup>,
    pub period: Option<Period>,
    pub time_zone: String,
    pub rows: Vec<ComplianceRow>,
}

/// SLA compliance: per clock (first contact, resolution, statutory answer) and group, the clocks
/// met in the period, how many in time, the breaches due in it, and the time taken in business
/// and wall-clock hours.
#[utoipa::path(
    get, path = "/api/v1/stats/sla", tag = "statistics",
    params(SlaQuery),
    responses(
        (status = 200, description = "The compliance rows (CSV with `Accept: text/csv`)", content((SlaReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A query parameter is invalid (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Agents do not read statistics (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sla(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<SlaQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    allowed(&caller)?;
    let asked = parse(query)?;
    let period = stats_query(state.service.clock().now(), asked.from, asked.to, None, None)?;
    let midnight = |day: NaiveDate| {
        day.and_hms_opt(0, 0, 0)
            .and_then(|local| REPORTING_TIME_ZONE.from_local_datetime(&local).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| invalid(format!("{day} has no midnight in {}", REPORTING_TIME_ZONE.name())))
    };
    let start = midnight(period.from)?;
    let end = midnight(period.to.succ_opt().ok_or_else(|| invalid("`to` is too late"))?)?;
    let registry = state.registry.current().await.map_err(super::registry::registry_error)?;
    let rows = compliance(&state.database, &registry, &state.calendar, start, end, asked.by, asked.period)
        .await
        .map_err(|e| ApiError::from(ticket_app::AppError::Store(e)))?;
    if wants_csv(&headers) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in &rows {
            writer.serialize(row).map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
        }
        let body = writer.into_inner().map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        return Ok(response);
    }
    let report = SlaReport {
        from: period.from,
        to: period.to,
        by: asked.by,
        period: asked.period,
        time_zone: REPORTING_TIME_ZONE.name().to_owned(),
        rows,
    };
    Ok(axum::Json(report).into_response())
}
