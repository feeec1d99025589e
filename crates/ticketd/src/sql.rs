//! One statement for both stores: the console's small tables are written with `$1`-style
//! parameters and plain types (text, 64-bit integers, booleans), which SQLite reads as `?1`.

use event_store::{Database, StoreError};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}
impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}
impl From<Option<String>> for Arg {
    fn from(value: Option<String>) -> Self {
        Self::OptText(value)
    }
}
impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}
impl From<bool> for Arg {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::OptText(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

/// Runs a statement; the rows it changed.
pub async fn execute(database: &Database, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
    let done = match database {
        Database::Sqlite { write, .. } => {
            let text = sqlite_text(sql);
            bind_all!(sqlx::query(&text), args).execute(write).await.map(|r| r.rows_affected())
        }
        Database::Postgres(pool) => bind_all!(sqlx::query(sql), args).execute(pool).await.map(|r| r.rows_affected()),
    };
    done.map_err(StoreError::from_sqlx)
}

/// Reads rows as tuples of plain types.
pub async fn fetch<T>(database: &Database, sql: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    T: Send + Unpin,
{
    let rows = match database {
        Database::Sqlite { read, .. } => {
            let text = sqlite_text(sql);
            bind_all!(sqlx::query_as::<_, T>(&text), args).fetch_all(read).await
        }
        Database::Postgres(pool) => bind_all!(sqlx::query_as::<_, T>(sql), args).fetch_all(pool).await,
    };
    rows.map_err(StoreError::from_sqlx)
}

/// Reads at most one row.
pub async fn fetch_one<T>(database: &Database, sql: &str, args: Vec<Arg>) -> Result<Option<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    T: Send + Unpin,
{
    Ok(fetch(database, sql, args).await?.into_iter().next())
}
