//! `/api/v1/queues/{queue}`: the agents' work lists, from the `ticket_view` read model.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticket_domain::vocabulary::{Category, Channel, ContractId, Priority, ServiceArea};
use ticket_projections::queues::{self, Queue, QueueFilter};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::ApiError;
use crate::auth::Caller;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    pub category: Option<Category>,
    pub service_area: Option<ServiceArea>,
    pub channel: Option<Channel>,
    /// A staff member's name.
    pub assignee: Option<String>,
    /// For `escalated`: the division holding the tickets.
    pub division: Option<String>,
    pub priority: Option<Priority>,
    /// A contract id: only tickets linked to it.
    #[param(min_length = 1, max_length = 100)]
    pub contract: Option<String>,
    /// Received on or after this day (YYYY-MM-DD, Europe/Budapest).
    pub received_from: Option<chrono::NaiveDate>,
    /// Received on or before this day (included).
    pub received_to: Option<chrono::NaiveDate>,
    /// Last resolved on or after this day (YYYY-MM-DD, Europe/Budapest).
    pub resolved_from: Option<chrono::NaiveDate>,
    /// Last resolved on or before this day (included).
    pub resolved_to: Option<chrono::NaiveDate>,
    /// Rows per page, 1-200 (default 50).
    pub limit: Option<u32>,
    /// Rows to skip (from `next_offset`).
    pub offset: Option<u32>,
    /// `received` (oldest first, the default) or `due` (earliest SLA due time first).
    pub sort: Option<QueueSort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueSort {
    Received,
    Due,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueItem {
    pub id: uuid::Uuid,
    pub number: i64,
    pub version: i64,
    pub subject: String,
    pub status: String,
    pub channel: String,
    pub category: Option<String>,
    pub service_area: Option<String>,
    pub assignee: Option<String>,
    pub escalated_to: Option<String>,
    pub priority: String,
    pub contract_id: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Seconds since the ticket was received.
    pub age_seconds: i64,
    /// The earliest due time of its running SLA clocks (first contact, resolution, statutory answer).
    pub due_at: Option<DateTime<Utc>>,
    /// Business seconds until `due_at` in the ticket's contract's calendar; negative when overdue.
    pub business_seconds_left: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    pub queue: String,
    /// Oldest first.
    pub items: Vec<QueueItem>,
    /// The `offset` of the next page, when there may be one.
    pub next_offset: Option<u32>,
}

fn name<T: Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_value(v).ok()).and_then(|v| v.as_str().map(str::to_owned))
}

/// A queue: `new`, `awaiting-contact`, `investigating`, `escalated`, `resolved`, `mine`, `all-open`,
/// or `all` (every ticket, closed ones too: with `received_*` and `resolved_*`, the list behind
/// a statistics figure).
/// Read models follow the event log within moments of each command.
#[utoipa::path(
    get, path = "/api/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "new, awaiting-contact, investigating, escalated, resolved, mine, all-open or all"), QueueQuery),
    responses(
        (status = 200, description = "One page of the queue, oldest first (or earliest due first with `sort=due`)", body = QueuePage),
        (status = 400, description = "A query parameter is invalid (`invalid_query`)", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_queue(
    State(state): State<AppState>,
    caller: Caller,
    Path(name_in_path): Path<String>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<QueuePage>, ApiError> {
    let queue = Queue::parse(&name_in_path).ok_or_else(|| {
        let names: Vec<&str> = Queue::ALL.iter().map(|(n, _)| *n).collect();
        ApiError::not_found(format!("no queue is named '{name_in_path}'; the queues are {}", names.join(", ")))
    })?;
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "A query parameter is invalid", e.body_text())
    })?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=queues::QUEUE_PAGE_MAX).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A query parameter is invalid",
            format!("limit must be 1 to {}", queues::QUEUE_PAGE_MAX),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    let day = |day: Option<chrono::NaiveDate>, next: bool| {
        day.map(|d| if next { d.succ_opt().unwrap_or(d) } else { d })
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|d| chrono::TimeZone::from_local_datetime(&chrono_tz::Europe::Budapest, &d).earliest())
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    if query.contract.as_deref().is_some_and(|c| c.is_empty() || c.chars().count() > 100) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "A query parameter is invalid",
            "contract must be 1 to 100 characters",
        ));
    }
    let filter = QueueFilter {
        contract: query.contract,
        received_from: day(query.received_from, false),
        received_to: day(query.received_to, true),
        resolved_from: day(query.resolved_from, false),
        resolved_to: day(query.resolved_to, true),
        category: name(&query.category),
        service_area: name(&query.service_area),
        channel: name(&query.channel),
        assignee: query.assignee,
        division: query.division,
        priority: name(&query.priority),
        limit,
        offset,
        by_due: query.sort == Some(QueueSort::Due),
        ..QueueFilter::default()
    };
    let rows = queues::queue(&state.database, queue, &caller.name, &filter)
        .await
        .map_err(|e| ApiError::from(ticket_app::AppError::Store(e)))?;
    // The service's one clock (`--clock-file` moves it), as every other time it shows.
    let now = state.service.clock().now();
    let registry = state.registry.current().await.map_err(super::registry::registry_error)?;
    let full = rows.len() as u32 == limit;
    Ok(axum::Json(QueuePage {
        queue: name_in_path,
        next_offset: full.then_some(offset + limit),
        items: rows
            .into_iter()
            .map(|row| {
                let contract = row.contract_id.as_deref().and_then(|id| ContractId::parse(id).ok());
                let calendar = registry.calendar_for(contract.as_ref(), &state.calendar);
                QueueItem {
                    id: row.ticket_id,
                    number: row.number,
                    version: row.version,
                    subject: row.subject,
                    status: row.status,
                    channel: row.channel,
                    category: row.category,
                    service_area: row.service_area,
                    assignee: row.assignee,
                    escalated_to: row.escalated_to,
                    priority: row.priority,
                    contract_id: row.contract_id,
                    age_seconds: (now - row.received_at).num_seconds().max(0),
                    received_at: row.received_at,
                    business_seconds_left: row.due_at.map(|due| calendar.left_until(now, due).num_seconds()),
                    due_at: row.due_at,
                }
            })
            .collect(),
    }))
}
