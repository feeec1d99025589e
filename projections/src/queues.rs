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
    /// Every ticket, closed ones too (the dashboard's drill-down lists).
    All,
}

impl Queue {
    pub const ALL: [(&'static str, Queue); 8] = [
        ("new", Queue::New),
        ("awaiting-contact", Queue::AwaitingContact),
        ("investigating", Queue::Investigating),
        ("escalated", Queue::Escalated),
        ("resolved", Queue::Resolved),
        ("mine", Queue::Mine),
        ("all-open", Queue::AllOpen),
        ("all", Queue::All),
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
    pub contract: Option<String>,
    /// Received at or after this instant.
    pub received_from: Option<DateTime<Utc>>,
    /// Received before this instant.
    pub received_to: Option<DateTime<Utc>>,
    /// Resolved (last) at or after this instant.
    pub resolved_from: Option<DateTime<Utc>>,
    /// Resolved (last) before this instant.
    pub resolved_to: Option<DateTime<Utc>>,
    /// Text anywhere in the subject, the reporter's name, address or phone (any case).
    pub text: Option<String>,
    pub limit: u32,
    pub offset: u32,
    /// Earliest SLA due time first (tickets without a running clock last), instead of oldest first.
    pub by_due: bool,
    /// Another order than `by_due` or oldest first; `descending` reverses it.
    pub sort: Option<QueueSortColumn>,
    pub descending: bool,
    /// Only this ticket (is it still in the queue?).
    pub number: Option<i64>,
}

/// The columns a queue can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSortColumn {
    Number,
    Subject,
    Reporter,
    Channel,
    Category,
    Priority,
    Status,
    Assignee,
    Received,
    Due,
}

impl QueueSortColumn {
    pub const ALL: [(&'static str, QueueSortColumn); 10] = [
        ("number", Self::Number),
        ("subject", Self::Subject),
        ("reporter", Self::Reporter),
        ("channel", Self::Channel),
        ("category", Self::Category),
        ("priority", Self::Priority),
        ("status", Self::Status),
        ("assignee", Self::Assignee),
        ("received", Self::Received),
        ("due", Self::Due),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, c)| *c == self).map(|(n, _)| *n).unwrap_or("received")
    }

    /// The ORDER BY expression, always ending on the unique number so pages never overlap.
    fn order(self, descending: bool) -> String {
        let direction = if descending { "DESC" } else { "ASC" };
        // NULLs last either way, so the unknown never heads a sorted list.
        let nulls_last = |column: &str| format!("{column} IS NULL, {column} {direction}");
        let key = match self {
            Self::Number => format!("number {direction}"),
            Self::Subject => format!("lower(subject) {direction}"),
            Self::Reporter => nulls_last("reporter_name"),
            Self::Channel => format!("channel {direction}"),
            Self::Category => nulls_last("category"),
            Self::Priority => format!(
                "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END {direction}"
            ),
            Self::Status => format!("status {direction}"),
            Self::Assignee => nulls_last("assignee"),
            Self::Received => format!("received_at {direction}"),
            Self::Due => nulls_last(DUE),
        };
        format!("{key}, number {direction}")
    }
}

/// The most rows one page returns.
pub const QUEUE_PAGE_MAX: u32 = 200;
/// The longest text a queue's text filter takes.
pub const QUEUE_TEXT_CHARS_MAX: usize = 200;

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
    /// `None` for tickets folded before the column existed (never, after migration 2006).
    pub reporter_name: Option<String>,
    /// The reporter's e-mail address, else phone.
    pub reporter_address: Option<String>,
    /// Whether one of its running SLA clocks is paused (waiting for the customer).
    pub paused: bool,
}

/// The WHERE clause of a queue with its filters, and the values it binds (all text or integers).
fn conditions(database: &Database, queue: Queue, caller: &str, filter: &QueueFilter) -> (String, Vec<Bound>) {
    let mark = match database {
        Database::Sqlite { .. } => '?',
        Database::Postgres(_) => '$',
    };
    // A restricted ticket (an erasure request under a legal hold) is in no queue.
    let mut conditions: Vec<String> = vec![match database {
        Database::Sqlite { .. } => "restricted = 0".into(),
        Database::Postgres(_) => "NOT restricted".into(),
    }];
    let mut values: Vec<Bound> = Vec::new();
    let mut bind = |condition: &str, value: Bound, conditions: &mut Vec<String>| {
        values.push(value);
        conditions.push(condition.replace('#', &format!("{mark}{}", values.len())));
    };
    match queue {
        Queue::New => bind("status = #", Bound::Text("received".into()), &mut conditions),
        Queue::AwaitingContact => bind("status = #", Bound::Text("acknowledged".into()), &mut conditions),
        Queue::Investigating => bind("status = #", Bound::Text("investigating".into()), &mut conditions),
        Queue::Escalated => bind("status = #", Bound::Text("escalated".into()), &mut conditions),
        Queue::Resolved => bind("status = #", Bound::Text("resolved".into()), &mut conditions),
        Queue::Mine => {
            bind("assignee = #", Bound::Text(caller.to_owned()), &mut conditions);
            conditions.push("status <> 'closed'".into());
        }
        Queue::AllOpen => conditions.push("status <> 'closed'".into()),
        Queue::All => {}
    }
    for (column, value) in [
        ("category", &filter.category),
        ("service_area", &filter.service_area),
        ("channel", &filter.channel),
        ("assignee", &filter.assignee),
        ("escalated_to", &filter.division),
        ("priority", &filter.priority),
        ("contract_id", &filter.contract),
    ] {
        if let Some(value) = value {
            bind(&format!("{column} = #"), Bound::Text(value.clone()), &mut conditions);
        }
    }
    let instant = |t: DateTime<Utc>| match database {
        Database::Sqlite { .. } => Bound::Micros(t.timestamp_micros()),
        Database::Postgres(_) => Bound::Instant(t),
    };
    if let Some(number) = filter.number {
        bind("number = #", Bound::Int(number), &mut conditions);
    }
    if let Some(from) = filter.received_from {
        bind("received_at >= #", instant(from), &mut conditions);
    }
    if let Some(to) = filter.received_to {
        bind("received_at < #", instant(to), &mut conditions);
    }
    if let Some(from) = filter.resolved_from {
        bind("resolved_at >= #", instant(from), &mut conditions);
    }
    if let Some(to) = filter.resolved_to {
        bind("resolved_at < #", instant(to), &mut conditions);
    }
    if let Some(text) = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // A LIKE pattern of the lower-cased text, its wildcards escaped.
        let escaped: String = text
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        bind("search_text LIKE # ESCAPE '\\'", Bound::Text(format!("%{escaped}%")), &mut conditions);
    }
    (conditions.join(" AND "), values)
}

/// A value a queue's query binds.
#[derive(Debug, Clone)]
enum Bound {
    Text(String),
    Int(i64),
    Micros(i64),
    Instant(DateTime<Utc>),
}

/// The earliest due time of a ticket's running clocks, looked up per row by the clocks' key
/// (grouping every running clock and joining it cost a scan per page).
const DUE: &str = "(SELECT MIN(c.due_at_us) FROM sla_clocks c WHERE c.ticket_id = v.ticket_id AND c.met_at_us IS NULL)";
/// Whether one of its running clocks is paused.
const PAUSED: &str =
    "(SELECT COUNT(*) FROM sla_clocks c WHERE c.ticket_id = v.ticket_id AND c.met_at_us IS NULL AND c.paused)";

/// One page of a queue, oldest first, earliest due first, or by a column.
pub async fn queue(
    database: &Database,
    queue: Queue,
    caller: &str,
    filter: &QueueFilter,
) -> Result<Vec<QueueRow>, StoreError> {
    let (conditions, values) = conditions(database, queue, caller, filter);
    let limit = filter.limit.clamp(1, QUEUE_PAGE_MAX);
    let order = match (filter.sort, filter.by_due) {
        (Some(column), _) => column.order(filter.descending),
        (None, true) => format!("{DUE} IS NULL, {DUE}, received_at, number"),
        (None, false) => "received_at, number".to_owned(),
    };
    let sql = format!(
        "SELECT v.ticket_id, number, version, subject, status, channel, category, service_area, assignee, \
         escalated_to, received_at, {DUE}, priority, contract_id, reporter_name, reporter_address, {PAUSED} \
         FROM ticket_view v WHERE {conditions} ORDER BY {order} LIMIT {limit} OFFSET {}",
        filter.offset
    );
    let error = |e: sqlx::Error| StoreError::Database(format!("reading a queue: {e}"));
    use sqlx::Row;
    match database {
        Database::Sqlite { read, .. } => {
            let mut query = sqlx::query(&sql);
            for value in values {
                query = match value {
                    Bound::Text(t) => query.bind(t),
                    Bound::Micros(m) | Bound::Int(m) => query.bind(m),
                    Bound::Instant(t) => query.bind(t.timestamp_micros()),
                };
            }
            let rows = query.fetch_all(read).await.map_err(error)?;
            rows.into_iter()
                .map(|r| {
                    let number: i64 = r.try_get(1).map_err(error)?;
                    let received_at = DateTime::from_timestamp_micros(r.try_get(10).map_err(error)?)
                        .ok_or_else(|| StoreError::Database(format!("ticket {number}: bad received_at")))?;
                    row(&r, received_at).map_err(error)
                })
                .collect()
        }
        Database::Postgres(pool) => {
            let mut query = sqlx::query(&sql);
            for value in values {
                query = match value {
                    Bound::Text(t) => query.bind(t),
                    Bound::Micros(m) | Bound::Int(m) => query.bind(m),
                    Bound::Instant(t) => query.bind(t),
                };
            }
            let rows = query.fetch_all(pool).await.map_err(error)?;
            rows.into_iter().map(|r| row(&r, r.try_get(10).map_err(error)?).map_err(error)).collect()
        }
    }
}

fn row<R: sqlx::Row>(r: &R, received_at: DateTime<Utc>) -> Result<QueueRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> Uuid: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(QueueRow {
        ticket_id: r.try_get(0)?,
        number: r.try_get(1)?,
        version: r.try_get(2)?,
        subject: r.try_get(3)?,
        status: r.try_get(4)?,
        channel: r.try_get(5)?,
        category: r.try_get(6)?,
        service_area: r.try_get(7)?,
        assignee: r.try_get(8)?,
        escalated_to: r.try_get(9)?,
        received_at,
        due_at: r.try_get::<Option<i64>, _>(11)?.and_then(DateTime::from_timestamp_micros),
        priority: r.try_get(12)?,
        contract_id: r.try_get(13)?,
        reporter_name: r.try_get(14)?,
        reporter_address: r.try_get(15)?,
        paused: r.try_get::<i64, _>(16)? != 0,
    })
}

/// How many open tickets stand in each status (the console's navigation counts; one pass over
/// the `(status, received_at)` index).
pub async fn status_counts(database: &Database) -> Result<Vec<(String, i64)>, StoreError> {
    // PostgreSQL counts from the open tickets' partial index (`ticket_view_open`); SQLite,
    // without planner statistics, is steered to the `(status, received_at)` index by naming
    // the open statuses.
    let rows: Vec<(String, i64)> = match database {
        Database::Sqlite { read, .. } => {
            let open = ticket_domain::Status::ALL
                .iter()
                .filter(|s| **s != ticket_domain::Status::Closed)
                .map(|s| format!("'{}'", s.name()))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT status, COUNT(*) FROM ticket_view WHERE status IN ({open}) GROUP BY status");
            sqlx::query_as(&sql).fetch_all(read).await
        }
        Database::Postgres(pool) => {
            sqlx::query_as("SELECT status, COUNT(*) FROM ticket_view WHERE status <> 'closed' GROUP BY status")
                .fetch_all(pool)
                .await
        }
    }
    .map_err(|e| StoreError::Database(format!("counting the queues: {e}")))?;
    Ok(rows)
}

/// The open tickets under restricted processing (an erasure request under a legal hold), as
/// `(status, escalated_to, assignee)`: few, read through the `ticket_view_restricted` partial
/// index. Every queue leaves them out, so the counts take them off theirs (counting with the
/// condition instead would cost each count its index-only scan).
pub async fn restricted_open(database: &Database) -> Result<Vec<(String, Option<String>, Option<String>)>, StoreError> {
    let rows =
        match database {
            Database::Sqlite { read, .. } => sqlx::query_as(
                "SELECT status, escalated_to, assignee FROM ticket_view WHERE restricted = 1 AND status <> 'closed'",
            )
            .fetch_all(read)
            .await,
            Database::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT status, escalated_to, assignee FROM ticket_view WHERE restricted AND status <> 'closed'",
                )
                .fetch_all(pool)
                .await
            }
        };
    rows.map_err(|e| StoreError::Database(format!("counting the restricted tickets: {e}")))
}

/// `counts` less one for each of `taken`'s keys (a key counted to nothing is dropped).
pub fn less(mut counts: Vec<(String, i64)>, taken: impl IntoIterator<Item = String>) -> Vec<(String, i64)> {
    for key in taken {
        if let Some(row) = counts.iter_mut().find(|row| row.0 == key) {
            row.1 -= 1;
        }
    }
    counts.retain(|row| row.1 > 0);
    counts
}

/// How many tickets each division holds (escalated, by division).
pub async fn escalated_counts(database: &Database) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "SELECT escalated_to, COUNT(*) FROM ticket_view WHERE status = 'escalated' AND escalated_to IS NOT NULL \
               GROUP BY escalated_to ORDER BY escalated_to";
    let rows: Vec<(String, i64)> = match database {
        Database::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await,
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .map_err(|e| StoreError::Database(format!("counting the escalations: {e}")))?;
    Ok(rows)
}

/// How many open tickets are assigned to `assignee` (the `(assignee, status)` index).
pub async fn assigned_open(database: &Database, assignee: &str) -> Result<i64, StoreError> {
    let count: Result<i64, sqlx::Error> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT COUNT(*) FROM ticket_view WHERE assignee = ?1 AND status <> 'closed'")
                .bind(assignee)
                .fetch_one(read)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM ticket_view WHERE assignee = $1 AND status <> 'closed'")
                .bind(assignee)
                .fetch_one(pool)
                .await
        }
    };
    count.map_err(|e| StoreError::Database(format!("counting the queues: {e}")))
}

/// Each queue's count from the status counts and the caller's own.
pub fn queue_counts(by_status: &[(String, i64)], mine: i64) -> Vec<(Queue, i64)> {
    let of = |status: &str| by_status.iter().find(|r| r.0 == status).map(|r| r.1).unwrap_or(0);
    vec![
        (Queue::New, of("received")),
        (Queue::AwaitingContact, of("acknowledged")),
        (Queue::Investigating, of("investigating")),
        (Queue::Escalated, of("escalated")),
        (Queue::Resolved, of("resolved")),
        (Queue::Mine, mine),
        (Queue::AllOpen, by_status.iter().map(|r| r.1).sum()),
    ]
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

/// The tickets answered (resolved, or closed) before `before`, oldest first: the retention
/// job's candidates.
pub async fn closed_before(database: &Database, before: DateTime<Utc>) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let sql = "SELECT ticket_id, number FROM ticket_view WHERE COALESCE(closed_at, resolved_at) < $1 ORDER BY number";
    match database {
        Database::Sqlite { read, .. } => sqlx::query_as(sql).bind(before.timestamp_micros()).fetch_all(read).await,
        Database::Postgres(pool) => sqlx::query_as(sql).bind(before).fetch_all(pool).await,
    }
    .map_err(StoreError::from_sqlx)
}

/// The tickets whose queue search text holds `needle` (lower-cased): the candidates for a
/// person's access export, to be confirmed against each ticket's own reporter.
pub async fn tickets_mentioning(database: &Database, needle: &str) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_as(
                "SELECT ticket_id, number FROM ticket_view WHERE search_text LIKE ?1 ESCAPE '\\' ORDER BY number",
            )
            .bind(pattern)
            .fetch_all(read)
            .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as(
                "SELECT ticket_id, number FROM ticket_view WHERE search_text LIKE $1 ESCAPE '\\' ORDER BY number",
            )
            .bind(pattern)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(StoreError::from_sqlx)
}

/// What a list of counted tickets shows of each: its number, subject, status and category now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketBrief {
    pub ticket_id: Uuid,
    pub number: i64,
    pub subject: String,
    pub status: String,
    pub category: Option<String>,
}

/// The briefs of these tickets (those `ticket_view` holds), in no particular order.
pub async fn briefs(database: &Database, ids: &[Uuid]) -> Result<Vec<TicketBrief>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match database {
        Database::Sqlite { read, .. } => {
            let mut found = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let mut select = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT ticket_id, number, subject, status, category FROM ticket_view WHERE ticket_id IN (",
                );
                let mut list = select.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                select.push(")");
                found.extend(
                    select.build_query_as::<TicketBrief>().fetch_all(read).await.map_err(StoreError::from_sqlx)?,
                );
            }
            Ok(found)
        }
        Database::Postgres(pool) => sqlx::query_as(
            "SELECT ticket_id, number, subject, status, category FROM ticket_view WHERE ticket_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(pool)
        .await
        .map_err(StoreError::from_sqlx),
    }
}

/// The tickets under restricted processing (an erasure request under a legal hold).
pub async fn restricted(database: &Database) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    let rows: Vec<Uuid> = match database {
        Database::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT ticket_id FROM ticket_view WHERE restricted = 1").fetch_all(read).await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar("SELECT ticket_id FROM ticket_view WHERE restricted").fetch_all(pool).await
        }
    }
    .map_err(StoreError::from_sqlx)?;
    Ok(rows.into_iter().collect())
}
