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
use ticket_projections::sla_clocks::{ComplianceFilter, ComplianceGroup, ComplianceRow, compliance_filtered};
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
    /// Only tickets that were of this category at the moment of each fact.
    pub category: Option<ticket_domain::vocabulary::Category>,
    /// Only tickets of this service area (at the moment of each fact).
    pub service_area: Option<ticket_domain::vocabulary::ServiceArea>,
    /// Only tickets received on this channel.
    pub channel: Option<ticket_domain::vocabulary::Channel>,
    /// Only facts while this division held the ticket (escalated to it, not yet answered);
    /// a division never escalated to counts nothing.
    pub division: Option<String>,
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
    /// Only tickets that were of this category at the moment of each fact.
    pub category: Option<ticket_domain::vocabulary::Category>,
    /// Only tickets of this service area (at the moment of each fact).
    pub service_area: Option<ticket_domain::vocabulary::ServiceArea>,
    /// Only tickets received on this channel.
    pub channel: Option<ticket_domain::vocabulary::Channel>,
    /// Only facts while this division held the ticket (escalated to it, not yet answered);
    /// a division never escalated to counts nothing.
    pub division: Option<String>,
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

/// What a spreadsheet takes for the start of a formula (OWASP's "CSV Injection"; ASVS 5.0
/// 1.2.10): a text cell beginning with one of these is written with a `'` before it.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as a spreadsheet shows it and never runs it.
pub(crate) fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) { format!("'{cell}").into() } else { cell.into() }
}

/// Every CSV the service writes is written here: one record per row (the header from the first
/// row's field names), every text cell [`neutralise`]d. Numbers are written as they are (a
/// negative number is a number, not a formula): the csv crate writes the rows as usual, and
/// each row's serialisation as JSON says which of its columns are text.
pub(crate) fn csv_body<Row: Serialize>(rows: &[Row]) -> Result<Vec<u8>, ApiError> {
    fn failed(error: impl std::fmt::Display) -> ApiError {
        ApiError::internal(format!("writing CSV: {error}"))
    }
    let mut plain = csv::Writer::from_writer(Vec::new());
    for row in rows {
        plain.serialize(row).map_err(failed)?;
    }
    let plain = plain.into_inner().map_err(failed)?;
    let mut reader = csv::Reader::from_reader(plain.as_slice());
    let columns = reader.headers().map_err(failed)?.clone();
    let mut writer = csv::Writer::from_writer(Vec::new());
    if !columns.is_empty() {
        writer.write_record(&columns).map_err(failed)?;
    }
    for (record, row) in reader.records().zip(rows) {
        let record = record.map_err(failed)?;
        let json = serde_json::to_value(row).map_err(failed)?;
        let cells = record.iter().zip(columns.iter()).map(|(cell, column)| match json.get(column) {
            Some(serde_json::Value::String(_)) => neutralise(cell),
            _ => cell.into(),
        });
        writer.write_record(cells.collect::<Vec<_>>().iter().map(|c| c.as_bytes())).map_err(failed)?;
    }
    writer.into_inner().map_err(failed)
}

fn respond<Row: Serialize + ToSchema>(
    headers: &HeaderMap,
    query: &StatsQuery,
    rows: Vec<Row>,
    file: &str,
) -> Result<Response, ApiError> {
    if wants_csv(headers) {
        let body = csv_body(&rows)?;
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

/// What one SLA compliance report depends on: the question, and the state it was read in (the
/// `sla_clocks` and `ticket_view` checkpoints, the registry's version).
type SlaKey = (i64, i64, Option<ComplianceGroup>, Option<Period>, ComplianceFilter, (i64, i64, u64));

/// The last SLA compliance reports asked for. A report reads every clock of its period and
/// computes each one's business time (~1 s over two years of 200,000 tickets); the same report
/// is the same answer while the read models it reads have not moved and the registry (the
/// contracts' calendars) has not changed, so it is kept and given again.
#[derive(Default)]
pub struct SlaReports {
    reports: std::sync::Mutex<Vec<(SlaKey, std::time::Instant, std::sync::Arc<Vec<ComplianceRow>>)>>,
}

/// How long a kept report is given again at most: a `ticketd rebuild` of a read model can end
/// at the position it started from with other rows (after a contract's terms changed).
const SLA_REPORT_AGE_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// How many reports are kept (each a few hundred rows at most).
const SLA_REPORTS_KEPT: usize = 32;

/// [`compliance_filtered`] through the service's [`SlaReports`].
#[allow(clippy::too_many_arguments)]
pub async fn compliance_report(
    state: &AppState,
    registry: &ticket_domain::registry::Registry,
    start: chrono::DateTime<Utc>,
    end: chrono::DateTime<Utc>,
    group: Option<ComplianceGroup>,
    period: Option<Period>,
    filter: &ComplianceFilter,
) -> Result<std::sync::Arc<Vec<ComplianceRow>>, event_store::StoreError> {
    let (clocks, tickets) = tokio::try_join!(
        ticket_projections::checkpoint_of(&state.database, "sla_clocks"),
        ticket_projections::checkpoint_of(&state.database, "ticket_view"),
    )?;
    let key: SlaKey = (
        start.timestamp_micros(),
        end.timestamp_micros(),
        group,
        period,
        filter.clone(),
        (clocks.0, tickets.0, registry.version),
    );
    if let Some((_, _, rows)) = state
        .sla_reports
        .reports
        .lock()
        .expect("the reports' lock")
        .iter()
        .find(|(k, at, _)| *k == key && at.elapsed() < SLA_REPORT_AGE_MAX)
    {
        return Ok(rows.clone());
    }
    let rows = std::sync::Arc::new(
        compliance_filtered(&state.database, registry, &state.calendar, start, end, group, period, filter).await?,
    );
    let mut reports = state.sla_reports.reports.lock().expect("the reports' lock");
    // Reports of an older state are never asked again.
    reports.retain(|(k, at, _)| k.5 == key.5 && at.elapsed() < SLA_REPORT_AGE_MAX);
    if reports.len() >= SLA_REPORTS_KEPT {
        reports.remove(0);
    }
    reports.push((key, std::time::Instant::now(), rows.clone()));
    Ok(rows)
}

/// A report's filter from the query's parameters.
pub fn filter_of(
    category: Option<ticket_domain::vocabulary::Category>,
    service_area: Option<ticket_domain::vocabulary::ServiceArea>,
    channel: Option<ticket_domain::vocabulary::Channel>,
    division: Option<&str>,
) -> query::Filter {
    use ticket_projections::statistics::facts;
    query::Filter {
        category: category.map(|c| facts::category_code(Some(c))),
        service_area: service_area.map(|a| facts::service_area_code(Some(a))),
        channel: channel.map(facts::channel_code),
        division: division.filter(|d| !d.is_empty()).map(str::to_owned),
    }
}

/// Checks the caller and the period, and computes the report from the day cache.
pub async fn report(
    state: &AppState,
    caller: &Caller,
    (from, to, period, by): (Option<NaiveDate>, Option<NaiveDate>, Option<Period>, Option<Dimension>),
    filter: &query::Filter,
) -> Result<(StatsQuery, query::Report), ApiError> {
    allowed(caller)?;
    let query = stats_query(state.service.clock().now(), from, to, period, by)?;
    let days =
        state.stats_days.days(&state.database).await.map_err(|e| ApiError::from(ticket_app::AppError::Store(e)))?;
    let report = query::report_filtered(&days, &query, filter);
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
    let filter = filter_of(asked.category, asked.service_area, asked.channel, asked.division.as_deref());
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, asked.by), &filter).await?;
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
    let filter = filter_of(asked.category, asked.service_area, asked.channel, asked.division.as_deref());
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, None), &filter).await?;
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
    let filter = filter_of(asked.category, asked.service_area, asked.channel, asked.division.as_deref());
    let (query, report) = report(&state, &caller, (asked.from, asked.to, asked.period, None), &filter).await?;
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
    /// Only the clocks of tickets now linked to this contract.
    pub contract: Option<String>,
    /// Only the clocks of tickets now of this category.
    pub category: Option<ticket_domain::vocabulary::Category>,
    /// Only the clocks of tickets now of this service area.
    pub service_area: Option<ticket_domain::vocabulary::ServiceArea>,
    /// Only the clocks of tickets now of this priority.
    pub priority: Option<ticket_domain::vocabulary::Priority>,
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
    let name = |value: Option<String>| value.filter(|v| !v.is_empty());
    let filter = ComplianceFilter {
        contract: asked.contract.filter(|c| !c.is_empty()),
        category: name(asked.category.map(|c| crate::console::labels::api_name(&c))),
        service_area: name(asked.service_area.map(|a| crate::console::labels::api_name(&a))),
        priority: name(asked.priority.map(|p| crate::console::labels::api_name(&p))),
    };
    let rows = compliance_report(&state, &registry, start, end, asked.by, asked.period, &filter)
        .await
        .map_err(|e| ApiError::from(ticket_app::AppError::Store(e)))?;
    if wants_csv(&headers) {
        let body = csv_body(rows.as_slice())?;
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
        rows: rows.to_vec(),
    };
    Ok(axum::Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        label: String,
        group: Option<String>,
        count: i64,
        change: f64,
        share: Option<f64>,
    }

    fn csv_of(rows: &[Row]) -> String {
        String::from_utf8(csv_body(rows).unwrap()).unwrap()
    }

    #[test]
    fn text_cells_that_start_a_formula_are_neutralised_and_numbers_stay_numbers() {
        let row = |label: &str, group: Option<&str>, count: i64, change: f64| Row {
            label: label.into(),
            group: group.map(Into::into),
            count,
            change,
            share: Some(-0.5),
        };
        let text = csv_of(&[
            row("=HYPERLINK(\"http://x\",\"y\")", Some("+1"), -3, -1.5),
            row("-2+3", Some("@SUM(A1)"), 0, 2.0),
            row("\tx", Some("\rx"), 1, 0.0),
            row("plain, with \"quotes\"", None, 7, -0.25),
            row("a=b", Some("'quoted already"), 8, 1e-3),
        ]);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap(), vec!["label", "group", "count", "change", "share"]);
        let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
        assert_eq!(
            rows,
            [
                ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "-3", "-1.5", "-0.5"],
                ["'-2+3", "'@SUM(A1)", "0", "2.0", "-0.5"],
                ["'\tx", "'\rx", "1", "0.0", "-0.5"],
                ["plain, with \"quotes\"", "", "7", "-0.25", "-0.5"],
                ["a=b", "'quoted already", "8", "0.001", "-0.5"],
            ]
        );
        assert_eq!(csv_of(&[]), "", "no rows, no header (as before)");
    }
}
