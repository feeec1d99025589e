//! One request, one `Idempotency-Key`: applied at most once whatever the timing — also when the
//! first attempt's append is held past the stale limit while the client repeats, and the
//! repeats reach another instance that takes the claim over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, Backend, TestApp, spawn_app_with};

/// The stale limit the servers run with (seconds), and how long the first append is held.
const STALE_SECONDS: &str = "1";
const HOLD: Duration = Duration::from_millis(2_500);
const REPEAT_EVERY: Duration = Duration::from_millis(250);

/// Sends `body` to `path` once (to the app), and while that is unanswered repeats it with the
/// same key every `REPEAT_EVERY`, in turn to the other instance and to the app; then once more.
/// Returns the first answer and every repeat's.
async fn first_and_repeats(app: &TestApp, other: &str, path: &str, key: &str, body: Value) -> (Answer, Vec<Answer>) {
    let headers = [("Idempotency-Key", key)];
    let done = AtomicBool::new(false);
    let first = async {
        let answer = app.request(Method::POST, path, Some(&app.agent), &headers, Some(body.clone())).await;
        done.store(true, Ordering::SeqCst);
        answer
    };
    let repeats = async {
        let mut answers = Vec::new();
        for turn in 0.. {
            tokio::time::sleep(REPEAT_EVERY).await;
            let finished = done.load(Ordering::SeqCst);
            let base = if turn % 2 == 0 { other } else { &app.base };
            answers
                .push(app.request_at(base, Method::POST, path, Some(&app.agent), &headers, Some(body.clone())).await);
            if finished || turn > 80 {
                break;
            }
        }
        answers
    };
    tokio::join!(first, repeats)
}

/// Whether an answer says "the first request with this key is still running".
fn told_to_wait(answer: &Answer, what: &str) -> bool {
    if answer.status == StatusCode::CONFLICT && answer.code() == "request_in_progress" {
        let retry_after = answer.headers.get("retry-after").and_then(|v| v.to_str().ok());
        assert_eq!(retry_after, Some("1"), "{what}: request_in_progress says when to retry");
        return true;
    }
    false
}

/// Every attempt is told to wait (409 `request_in_progress` with `Retry-After`) or gets the one
/// real answer: same status, same body. Returns that answer. With `first_wins`, the first
/// request gets it and some repeats are told to wait.
fn the_one_answer<'a>(first: &'a Answer, repeats: &'a [Answer], what: &str, first_wins: bool) -> &'a Answer {
    let attempts: Vec<&Answer> = std::iter::once(first).chain(repeats).collect();
    let real: Vec<&Answer> = attempts.iter().copied().filter(|answer| !told_to_wait(answer, what)).collect();
    let Some(answer) = real.first() else { panic!("{what}: no attempt got an answer") };
    for other in &real {
        assert_eq!((other.status, &other.body), (answer.status, &answer.body), "{what}: two different answers");
    }
    if first_wins {
        assert!(std::ptr::eq(*answer, first), "{what}: the first request was told to wait");
        assert!(real.len() < attempts.len(), "{what}: no repeat came while the first was held");
    }
    answer
}

pub async fn a_slow_append_is_applied_once_while_the_client_repeats(backend: Backend) {
    let env = [("TICKETD_MAIL", "off"), ("TICKETD_IDEMPOTENCY_STALE_SECONDS", STALE_SECONDS)];
    let Some(app) = spawn_app_with(backend, &env).await else { return };
    let sibling = app.start_sibling_if_shared();
    let sibling_base = sibling.as_ref().map_or_else(|| app.base.clone(), |s| s.base.clone());
    let created = app.create_ticket().await;
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Hold the next note's and the next new ticket's append for longer than the stale limit.
    let holder = match backend {
        Backend::Postgres => {
            let seconds = HOLD.as_secs_f64();
            for sql in [
                "CREATE SEQUENCE hold_noteadded".to_owned(),
                "CREATE SEQUENCE hold_received".to_owned(),
                // BEFORE INSERT, and it only sleeps (the table's own triggers refuse changes):
                // the first row of each kind waits, every later one goes straight through.
                format!(
                    "CREATE FUNCTION hold_first_append() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                       IF NEW.event_type IN ('NoteAdded', 'Received') \
                          AND nextval('hold_' || lower(NEW.event_type)) = 1 THEN \
                         PERFORM pg_sleep({seconds}); \
                       END IF; \
                       RETURN NEW; \
                     END $$"
                ),
                "CREATE TRIGGER hold_first_append BEFORE INSERT ON events \
                 FOR EACH ROW EXECUTE FUNCTION hold_first_append()"
                    .to_owned(),
            ] {
                app.execute_sql("SELECT 1", &sql).await;
            }
            None
        }
        Backend::Sqlite => {
            // SQLite has one writer: hold its write lock from outside. Every write waits (the
            // claims too), and then runs at once with claims already older than the limit, so
            // the instances' takeovers race the first attempts.
            let (locked, is_locked) = tokio::sync::oneshot::channel();
            let url = app.database_url().to_owned();
            let holder = tokio::spawn(async move {
                use sqlx::Connection;
                let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut connection).await.unwrap();
                locked.send(()).unwrap();
                tokio::time::sleep(HOLD).await;
                sqlx::query("ROLLBACK").execute(&mut connection).await.unwrap();
            });
            is_locked.await.unwrap();
            Some(holder)
        }
    };

    let intake = json!({
        "channel": "phone",
        "reporter": {"name": "Tóth Éva", "email": "toth.eva@example.hu"},
        "subject": "Kétszer vonták le a díjat",
        "message": "A múlt havi díjat kétszer terhelték a számlámra."
    });
    let note_path = format!("/api/v1/tickets/{id}/notes");
    let ((note, note_repeats), (ticket, ticket_repeats)) = tokio::join!(
        first_and_repeats(&app, &sibling_base, &note_path, "note-slow", json!({"body": "once"})),
        first_and_repeats(&app, &sibling_base, "/api/v1/tickets", "intake-slow", intake),
    );
    if let Some(holder) = holder {
        holder.await.unwrap();
    }

    // On PostgreSQL the first request claims its key before its append is held, and repeats
    // within the stale limit find the claim fresh: they wait. On SQLite every write waits for
    // the lock (the claims too), so which attempt claims first is a race.
    let first_wins = backend == Backend::Postgres;
    let note = the_one_answer(&note, &note_repeats, "notes", first_wins);
    assert_eq!((note.status, note.version()), (StatusCode::OK, 2), "{}", note.body);
    let ticket = the_one_answer(&ticket, &ticket_repeats, "intake", first_wins);
    assert_eq!(ticket.status, StatusCode::CREATED, "the new ticket, never 'already exists': {}", ticket.body);

    // Applied once: one event per key's correlation id, and nothing else written.
    for key in ["note-slow", "intake-slow"] {
        let events = app
            .query_count(&format!(
                "SELECT count(*) FROM events WHERE correlation_id = \
                 (SELECT correlation_id FROM idempotency_keys WHERE key = '{key}')"
            ))
            .await;
        assert_eq!(events, 1, "{key}: the command was applied {events} times");
    }
    let history = app.get(&format!("/api/v1/tickets/{id}/events"), &app.agent).await;
    assert_eq!(history.body["events"].as_array().unwrap().len(), 2, "{}", history.body);
    assert_eq!(app.query_count("SELECT count(*) FROM events WHERE event_type = 'Received'").await, 2);
    let new_id = ticket.body["id"].as_str().unwrap();
    let stored = app.get(&format!("/api/v1/tickets/{new_id}"), &app.agent).await;
    assert_eq!((stored.body["number"].clone(), stored.version()), (ticket.body["number"].clone(), 1));
}
