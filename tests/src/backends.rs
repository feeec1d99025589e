//! The stores under test. Each test gets a fresh one: a new SQLite file, or a new PostgreSQL
//! schema in the database named by `TICKETD_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! PostgreSQL is never skipped silently: if it cannot be reached the PostgreSQL tests fail and
//! say how to start it. `TICKETD_TEST_POSTGRES_URL=skip` skips them on a machine without it,
//! loudly; CI never sets it.

use std::sync::Arc;

use event_store::postgres::{PostgresOptions, PostgresStore};
use event_store::sqlite::{SqliteOptions, SqliteStore};
use event_store::{SharedStore, SharedTail};

pub const POSTGRES_URL_VARIABLE: &str = "TICKETD_TEST_POSTGRES_URL";
pub const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store that cleans up after itself when dropped.
pub struct TestStore {
    pub store: SharedStore,
    pub sqlite: Option<Arc<SqliteStore>>,
    pub postgres: Option<Arc<PostgresStore>>,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
}

impl TestStore {
    /// The store's database, for the read models beside it.
    pub fn database(&self) -> event_store::Database {
        match (&self.sqlite, &self.postgres) {
            (Some(sqlite), _) => {
                event_store::Database::Sqlite { write: sqlite.write_pool().clone(), read: sqlite.read_pool().clone() }
            }
            (_, Some(postgres)) => event_store::Database::Postgres(postgres.pool().clone()),
            _ => unreachable!("a test store has a backend"),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

pub async fn sqlite() -> Option<TestStore> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("data/events.db"), SqliteOptions::default()).await.unwrap());
    Some(TestStore {
        store: store.clone(),
        sqlite: Some(store),
        postgres: None,
        cleanup: Some(Box::new(move || drop(dir))),
    })
}

/// The PostgreSQL URL, or `None` when explicitly skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VARIABLE).unwrap_or_else(|_| POSTGRES_URL_DEFAULT.to_owned());
    if url == "skip" {
        eprintln!("SKIPPED: PostgreSQL tests ({POSTGRES_URL_VARIABLE}=skip)");
        return None;
    }
    Some(url)
}

pub async fn postgres() -> Option<TestStore> {
    let url = postgres_url()?;
    let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
    let options = PostgresOptions { max_connections: 12, schema: Some(schema.clone()), ..PostgresOptions::default() };
    let store = PostgresStore::connect(&url, options).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {url} is not usable: {e}\nStart it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or point {POSTGRES_URL_VARIABLE} at another server."
        )
    });
    let store = Arc::new(store);
    let drop_url = url.clone();
    Some(TestStore {
        store: store.clone(),
        sqlite: None,
        postgres: Some(store),
        cleanup: Some(Box::new(move || drop_schema(drop_url, schema))),
    })
}

fn drop_schema(url: String, schema: String) {
    // Drop runs outside any runtime we may block: use a thread with its own.
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut connection) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut connection).await;
            }
        });
    })
    .join();
}

/// The events a [`SharedTail`] in front of a test store keeps: few, so that followers leave it
/// and come back while the suite runs.
pub const SHARED_TAIL_TEST_CAPACITY: usize = 16;

/// A fresh SQLite store read through a [`SharedTail`] (as a server's projections read it).
pub async fn sqlite_shared_tail() -> Option<TestStore> {
    sqlite().await.map(with_shared_tail)
}

/// A fresh PostgreSQL schema read through a [`SharedTail`].
pub async fn postgres_shared_tail() -> Option<TestStore> {
    postgres().await.map(with_shared_tail)
}

fn with_shared_tail(mut test_store: TestStore) -> TestStore {
    test_store.store = Arc::new(SharedTail::new(test_store.store.clone(), SHARED_TAIL_TEST_CAPACITY));
    test_store
}
