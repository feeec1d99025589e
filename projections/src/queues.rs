//! The agents' queues, read from `ticket_view`.

use chrono::{DateTime, Utc};
use event_store::{Database, StoreError};
use uuid::Uuid;

/// Which tickets a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Received, not yet acknowledged.
    New,
    /// Acknowledged, waiting for the agent's first contact.
    AwaitingContact,
    Investigating,
    /// With a division (filter by `division`).
    Escalated,
    /// Resolved, not yet closed.
    Resolved,
    /// Open tickets assigned to the caller.
    Mine,
    /// Every ticket not closed.
    AllOpen,
}

impl Queue {
    pub const ALL: [(&'static str, Queue); 7] = [
        ("new", Queue::New),
        ("awaiting-contact", Queue::AwaitingContact),
        ("investigating", Queue::Investigating),
        ("escalated", Queue::Escalated),
        ("resolved", Queue::Resolved),
        ("mine", Queue::Mine),
        ("all-open", Queue::AllOpen),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, q)| *q)
    }
}

/// Narrowing and paging a queue. Values are the API's names (`complaint`, `norma`, …).
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub category: Option<String>,
    pub service_area: Option<String>,
    pub channel: Option<String>,
    pub assignee: Option<String>,
    pub division: Option<String>,
    pub priority: Option<String>,
    pub limit: u32,
    pub offset: u32,
    /// Earliest SLA due time first (tickets without a running clock last), instead of oldest first.
    pub by_due: bool,
}

/// The most rows one page returns.
pub const QUEUE_PAGE_MAX: u32 = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub ticket_id: Uuid,
    pub number: i64,
    pub version: i64,
    pub subject: String,
    pub status: String,
    pub channel: String,
    pub category: Option<String>,
    pub service_area: Option<String>,
    pub assignee: Option<String>,
    pub escalated_to: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The earliest due time of the ticket's running SLA clocks.
    pub due_at: Option<DateTime<Utc>>,
    pub priority: String,
    pub contract_id: Option<String>,
}

type SqliteRow = (
    Uuid,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    String,
    Option<String>,
);
type PgRow = (
    Uuid,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<i64>,
    String,
    Option<String>,
);

/// One page of a queue, oldest first or earliest due first.
pub async fn queue(
    database: &Database,
    queue: Queue,
    caller: &str,
    filter: &QueueFilter,
) -> Result<Vec<QueueRow>, StoreError> {
    let mark = match database {
        Database::Sqlite { .. } => '?',
        Database::Postgres(_) => '$',
    };
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut bind = |condition: &str, value: String, conditions: &mut Vec<String>| {
        values.push(value);
        conditions.push(condition.replace('#', &format!("{mark}{}", values.len())));
    };
    match queue {
        Queue::New => bind("status = #", "received".into(), &mut conditions),
        Queue::AwaitingContact => bind("status = #", "acknowledged".into(), &mut conditions),
        Queue::Investigating => bind("status = #", "investigating".into(), &mut conditions),
        Queue::Escalated => bind("status = #", "escalated".into(), &mut conditions),
        Queue::Resolved => bind("status = #", "resolved".into(), &mut conditions),
        Queue::Mine => {
            bind("assignee = #", caller.to_owned(), &mut conditions);
            conditions.push("status <> 'closed'".into());
        }
        Queue::AllOpen => conditions.push("status <> 'closed'".into()),
    }
    for (column, value) in [
        ("category", &filter.category),
        ("service_area", &filter.service_area),
        ("channel", &filter.channel),
        ("assignee", &filter.assignee),
        ("escalated_to", &filter.division),
        ("priority", &filter.priority),
    ] {
        if let Some(value) = value {
            bind(&format!("{column} = #"), value.clone(), &mut conditions);
        }
    }
    let limit = filter.limit.clamp(1, QUEUE_PAGE_MAX);
    let order =
        if filter.by_due { "d.due_at_us IS NULL, d.due_at_us, received_at, number" } else { "received_at, number" };
    let sql = format!(
        "SELECT v.ticket_id, number, version, subject, status, channel, category, service_area, assignee, \
         escalated_to, received_at, d.due_at_us, priority, contract_id FROM ticket_view v LEFT JOIN (SELECT ticket_id, MIN(due_at_us) AS \
         due_at_us FROM sla_clocks WHERE met_at_us IS NULL GROUP BY ticket_id) d ON d.ticket_id = v.ticket_id \
         WHERE {} ORDER BY {order} LIMIT {limit} OFFSET {}",
        conditions.join(" AND "),
        filter.offset
    );
    let error = |e: sqlx::Error| StoreError::Database(format!("reading a queue: {e}"));
    match database {
        Database::Sqlite { read, .. } => {
            let mut query = sqlx::query_as::<_, SqliteRow>(&sql);
            for value in &values {
                query = query.bind(value);
            }
            let rows = query.fetch_all(read).await.map_err(error)?;
            rows.into_iter()
                .map(|r| {
                    let received_at = DateTime::from_timestamp_micros(r.10)
                        .ok_or_else(|| StoreError::Database(format!("ticket {}: bad received_at", r.1)))?;
                    Ok(QueueRow {
                        ticket_id: r.0,
                        number: r.1,
                        version: r.2,
                        subject: r.3,
                        status: r.4,
                        channel: r.5,
                        category: r.6,
                        service_area: r.7,
                        assignee: r.8,
                        escalated_to: r.9,
                        received_at,
                        due_at: r.11.and_then(DateTime::from_timestamp_micros),
                        priority: r.12,
                        contract_id: r.13,
                    })
                })
                .collect()
        }
        Database::Postgres(pool) => {
            let mut query = sqlx::query_as::<_, PgRow>(&sql);
            for value in &values {
                query = query.bind(value);
            }
            let rows = query.fetch_all(pool).await.map_err(error)?;
            Ok(rows
                .into_iter()
                .map(|r| QueueRow {
                    ticket_id: r.0,
                    number: r.1,
                    version: r.2,
                    subject: r.3,
                    status: r.4,
                    channel: r.5,
                    category: r.6,
                    service_area: r.7,
                    assignee: r.8,
                    escalated_to: r.9,
                    received_at: r.10,
                    due_at: r.11.and_then(DateTime::from_timestamp_micros),
                    priority: r.12,
                    contract_id: r.13,
                })
                .collect())
        }
    }
}

/// The tickets received in `[from, to)`, oldest first: (ticket id, number).
pub async fn received_between(
    database: &Database,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Uuid, i64)>, StoreError> {
    match database {
        Database::Sqlite { read, .. } => sqlx::query_as(
            "SELECT ticket_id, number FROM ticket_view WHERE received_at >= ?1 AND received_at < ?2 ORDER BY received_at, number",
        )
        .bind(from.timestamp_micros())
        .bind(to.timestamp_micros())
        .fetch_all(read)
        .await,
        Database::Postgres(pool) => sqlx::query_as(
            "SELECT ticket_id, number FROM ticket_view WHERE received_at >= $1 AND received_at < $2 ORDER BY received_at, number",
        )
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await,
    }
    .map_err(StoreError::from_sqlx)
}
