//! Starts the real `ticketd` binary on a free port against a fresh store, with a token per
//! role, and gives typed helpers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub agent: String,
    pub admin: String,
    pub auditor: String,
    pub quality_manager: String,
    database_url: String,
    child: Option<Child>,
    postgres_schema: Option<String>,
    /// A database of its own (a restored copy), dropped with the app.
    postgres_database: Option<String>,
    /// Extra environment for the server (mail settings, …).
    pub env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn version(&self) -> u64 {
        self.body["version"].as_u64().unwrap_or_else(|| panic!("no version in {}", self.body))
    }
    pub fn etag(&self) -> Option<&str> {
        self.headers.get("etag").and_then(|v| v.to_str().ok())
    }
}

/// One number from the database at `database_url` (the same statement on both backends).
pub async fn count(database_url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    if database_url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut connection).await.unwrap()
    } else {
        let mut connection = sqlx::PgConnection::connect(database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut connection).await.unwrap()
    }
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ticketd")
}

const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `None` when PostgreSQL is explicitly skipped (`TICKETD_TEST_POSTGRES_URL=skip`). Mail is
/// off (enqueued, not sent), so that scenarios acknowledge tickets themselves.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[("TICKETD_MAIL", "off")]).await
}

/// Like [`spawn_app`], with this environment for the server (`{dir}` in a value is replaced by
/// the app's temporary folder).
pub async fn spawn_app_with(backend: Backend, env: &[(&str, &str)]) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (database_url, postgres_schema) = match backend {
        Backend::Sqlite => (format!("sqlite:{}", dir.path().join("data/tickets.db").display()), None),
        Backend::Postgres => {
            let url = std::env::var("TICKETD_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL_DEFAULT.to_owned());
            if url == "skip" {
                eprintln!("SKIPPED: PostgreSQL tests (TICKETD_TEST_POSTGRES_URL=skip)");
                return None;
            }
            let schema = format!("api_{}", uuid::Uuid::new_v4().simple());
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not usable: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut connection).await.unwrap();
            let separator = if url.contains('?') { '&' } else { '?' };
            (format!("{url}{separator}options=-c%20search_path%3D{schema}"), Some(schema))
        }
    };
    let token = |role: &str, name: &str| {
        let output = Command::new(binary())
            .args(["token", "create", "--role", role, "--name", name])
            .env("TICKETD_DATABASE_URL", &database_url)
            .env("TICKETD_KEK_FILE", dir.path().join("personal.keys"))
            .env("TICKETD_LOG", "warn")
            .output()
            .expect("ticketd token create runs");
        assert!(output.status.success(), "token create failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let agent = token("agent", "kata");
    let admin = token("admin", "root-admin");
    let auditor = token("auditor", "audrey");
    let quality_manager = token("quality_manager", "quinn");
    let mut app = TestApp {
        base: String::new(),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        agent,
        admin,
        auditor,
        quality_manager,
        database_url,
        child: None,
        postgres_schema,
        postgres_database: None,
        env: env.iter().map(|(k, v)| (k.to_string(), v.replace("{dir}", &dir.path().display().to_string()))).collect(),
        dir,
    };
    app.start();
    Some(app)
}

impl TestApp {
    /// Starts (or restarts) the server process.
    pub fn start(&mut self) {
        let (base, child) = self.spawn_server();
        self.base = base;
        self.child = Some(child);
    }

    /// Starts a second server process on the same store and settings (another instance), on
    /// its own free port; it is stopped when the returned handle is dropped.
    pub fn start_sibling(&self) -> Sibling {
        let (base, child) = self.spawn_server();
        Sibling { base, child }
    }

    /// An app on a restored copy of this app's store (`database_url`), with the same tokens,
    /// settings and key-encryption keys, started; `database` (PostgreSQL) is dropped with it.
    pub fn on_restored(&self, database_url: String, database: Option<String>) -> TestApp {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::copy(self.kek_file(), dir.path().join("personal.keys")).expect("the key file copies");
        let mut app = TestApp {
            base: String::new(),
            client: self.client.clone(),
            agent: self.agent.clone(),
            admin: self.admin.clone(),
            auditor: self.auditor.clone(),
            quality_manager: self.quality_manager.clone(),
            database_url,
            child: None,
            postgres_schema: None,
            postgres_database: database,
            env: self.env.clone(),
            dir,
        };
        app.start();
        app
    }

    /// [`Self::start_sibling`] with these settings on top of the app's.
    pub fn start_sibling_with(&mut self, env: &[(&str, &str)]) -> Sibling {
        let saved = self.env.clone();
        self.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let (base, child) = self.spawn_server();
        self.env = saved;
        Sibling { base, child }
    }

    /// The instance name every server of this app runs under (unless its settings say).
    fn instance_name(&self) -> String {
        format!("test-{}", self.dir.path().file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
    }

    /// Another instance where the store takes several (PostgreSQL); on SQLite, checks that a
    /// second `serve` refuses to start, and gives `None`.
    pub fn start_sibling_if_shared(&self) -> Option<Sibling> {
        if self.is_postgres() {
            return Some(self.start_sibling());
        }
        let mut child =
            self.server_command().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("ticketd runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("a second serve on the SQLite file did not refuse to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "a second serve on the SQLite file exited with success: {stderr}");
        assert!(
            stderr.contains("another `ticketd serve` already runs on the SQLite store"),
            "a second serve says why it refuses: {stderr}"
        );
        None
    }

    fn server_command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TICKETD_DATABASE_URL", &self.database_url)
            .env("TICKETD_KEK_FILE", self.dir.path().join("personal.keys"))
            .env("TICKETD_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()))
            .env("TICKETD_OUTBOX_DIR", self.dir.path().join("outbox"))
            .env("TICKETD_ATTACHMENTS_DIR", self.dir.path().join("attachments"))
            // Named like an instance of its own (a pod): a run restarted after a crash takes
            // its leases back at once.
            .env("TICKETD_INSTANCE_NAME", self.instance_name())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// A `ticketd serve` on a free port against this app's store and settings: its address.
    fn spawn_server(&self) -> (String, Child) {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TICKETD_DATABASE_URL", &self.database_url)
            .env("TICKETD_KEK_FILE", self.dir.path().join("personal.keys"))
            .env("TICKETD_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()))
            .env("TICKETD_OUTBOX_DIR", self.dir.path().join("outbox"))
            .env("TICKETD_ATTACHMENTS_DIR", self.dir.path().join("attachments"))
            // Named like an instance of its own (a pod): a run restarted after a crash takes
            // its leases back at once.
            .env("TICKETD_INSTANCE_NAME", self.instance_name())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(match self.env.iter().find(|(k, _)| k == "TEST_STDERR_FILE") {
                // A test that reads the server's log (appended across restarts).
                Some((_, path)) => Stdio::from(
                    std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the log file opens"),
                ),
                None if std::env::var_os("TEST_LOG").is_some() => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("ticketd serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("ticketd prints its address");
        let address =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line: {line}"));
        (address.to_owned(), child)
    }

    /// Starts `ticketd` with these arguments against the same database, its stdout piped.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(binary())
            .args(args)
            .env("TICKETD_DATABASE_URL", &self.database_url)
            .env("TICKETD_KEK_FILE", self.dir.path().join("personal.keys"))
            .env("TICKETD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ticketd runs")
    }

    /// Every row of a table, as text in a stable order (to compare read models).
    pub async fn dump_table(&self, table: &str) -> String {
        use sqlx::Connection;
        if self.database_url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(&self.database_url).await.unwrap();
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut connection)
                .await
                .unwrap();
            let row = columns.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || ',' || ");
            let sql = format!(
                "SELECT COALESCE(group_concat(r, char(10)), '') FROM (SELECT {row} AS r FROM {table} ORDER BY r)"
            );
            sqlx::query_scalar(&sql).fetch_one(&mut connection).await.unwrap()
        } else {
            let mut connection = sqlx::PgConnection::connect(&self.database_url).await.unwrap();
            let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t");
            sqlx::query_scalar(&sql).fetch_one(&mut connection).await.unwrap()
        }
    }

    /// The server's database URL (a PostgreSQL URL selects the test's schema).
    /// The key-encryption key file every `ticketd` of this app reads.
    pub fn kek_file(&self) -> std::path::PathBuf {
        self.dir.path().join("personal.keys")
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Whether the store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        !self.database_url.starts_with("sqlite:")
    }

    /// The app's temporary folder (its SQLite file, its mail outbox folder, …).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The CPU time the server process has used so far (Linux: `/proc/<pid>/stat`).
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.as_ref().expect("the server runs").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's /proc stat");
        // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
        let after = stat.rsplit_once(')').unwrap().1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Kills the server process outright (SIGKILL): a crash, nothing finishes.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One number from the server's database (the same statement on both backends).
    pub async fn query_count(&self, sql: &str) -> i64 {
        count(&self.database_url, sql).await
    }

    /// Stops the server process with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        self.request_at(&self.base, method, path, token, headers, body).await
    }

    /// [`request`](Self::request) to the server at `base` (a [`Sibling`]'s, or this app's).
    pub async fn request_at(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_client_error() || status.is_server_error() {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            assert_eq!(content_type, "application/problem+json", "errors are problem+json: {status} {body}");
            assert!(
                body["code"].is_string() && body["detail"].is_string(),
                "a problem has a code and a detail: {body}"
            );
        }
        assert!(!status.is_server_error(), "a server error: {status} {body}");
        Answer { status, headers, body }
    }

    /// Runs `ticketd` with these arguments against the same database; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(binary())
            .args(args)
            .env("TICKETD_DATABASE_URL", &self.database_url)
            .env("TICKETD_KEK_FILE", self.dir.path().join("personal.keys"))
            .env("TICKETD_LOG", "warn")
            .output()
            .expect("ticketd runs");
        assert!(output.status.success(), "ticketd {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs one statement on the server's database (to stage what only a crash would leave).
    pub async fn execute_sql(&self, sqlite: &str, postgres: &str) {
        use sqlx::Connection;
        if self.database_url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(&self.database_url).await.unwrap();
            sqlx::query(sqlite).execute(&mut connection).await.unwrap();
        } else {
            let mut connection = sqlx::PgConnection::connect(&self.database_url).await.unwrap();
            sqlx::query(postgres).execute(&mut connection).await.unwrap();
        }
    }

    pub async fn create_ticket(&self) -> Answer {
        self.request(
            Method::POST,
            "/api/v1/tickets",
            Some(&self.agent),
            &[],
            Some(json!({
                "channel": "phone",
                "reporter": {"name": "Kovács Anna", "email": "kovacs.anna@example.hu", "phone": "+36 30 123 4567"},
                "subject": "Nem tudok belépni a Normába",
                "message": "Tegnap óta hibát kapok belépéskor.",
                "service_area": "norma"
            })),
        )
        .await
    }

    /// Registers divisions (by id) in the registry, as an admin would, so tickets can be
    /// escalated to them.
    pub async fn register_divisions(&self, ids: &[&str]) {
        for id in ids {
            let body =
                json!({"name": format!("Division {id}"), "notification_email": format!("{id}@divisions.example")});
            let saved =
                self.request(Method::PUT, &format!("/api/v1/divisions/{id}"), Some(&self.admin), &[], Some(body)).await;
            assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
        }
    }

    /// Intake of `body` by the agent (`POST /api/v1/tickets`).
    pub async fn create_ticket_with(&self, body: Value) -> Answer {
        self.request(Method::POST, "/api/v1/tickets", Some(&self.agent), &[], Some(body)).await
    }

    /// Runs a workflow action as the agent.
    pub async fn act(&self, ticket: &str, action: &str, body: Value) -> Answer {
        self.request(Method::POST, &format!("/api/v1/tickets/{ticket}/{action}"), Some(&self.agent), &[], Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request(Method::GET, path, Some(token), &[], None).await
    }
}

/// A second server process on a [`TestApp`]'s store ([`TestApp::start_sibling`]).
pub struct Sibling {
    pub base: String,
    child: Child,
}

impl Sibling {
    /// SIGKILL: a crash, nothing released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits until it has exited (a graceful stop: it drains and releases).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("an instance did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        if let Some(database) = self.postgres_database.take() {
            run_on_server(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
        }
        if let Some(schema) = self.postgres_schema.take() {
            run_on_server(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// Runs one statement on the test PostgreSQL server, from a thread of its own (a drop may run
/// inside a runtime), ignoring failures (clean-up only).
fn run_on_server(sql: String) {
    let url = std::env::var("TICKETD_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL_DEFAULT.to_owned());
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut connection) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&sql).execute(&mut connection).await;
            }
        });
    })
    .join();
}
