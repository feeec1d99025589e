//! Live updates: one Server-Sent Events stream per open page (`/console/live`).
//!
//! A task follows the store's global order (`Subscription`); for each batch it waits until
//! `ticket_view` has applied it (so a fragment fetched next shows the change), then says which
//! tickets changed. Pages fetch those rows again with ordinary GETs, so what a user may see is
//! decided where it always is. The stream of a ticket page also counts who has the ticket open
//! (per instance) and tells the others.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use event_store::{Database, GlobalPosition, SharedStore, Subscription};
use serde::Deserialize;
use ticket_domain::vocabulary::{Language, TicketId};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::StaffUser;
use crate::http::AppState;
use crate::pages::tr;

#[derive(Debug, Clone)]
pub enum LiveMessage {
    /// These tickets (by number) changed; `ticket_view` shows the change.
    Changed(Vec<i64>),
    /// Who has this ticket open now (display names, with how many pages each).
    Presence { ticket: i64, names: Vec<String> },
}

/// The broadcast every stream listens to, and who has which ticket open.
pub struct Live {
    sender: tokio::sync::broadcast::Sender<LiveMessage>,
    presence: Arc<Mutex<HashMap<i64, BTreeMap<String, usize>>>>,
}

impl Default for Live {
    fn default() -> Self {
        Self { sender: tokio::sync::broadcast::channel(1_024).0, presence: Arc::default() }
    }
}

impl Live {
    pub fn send(&self, message: LiveMessage) {
        // Nobody listening is fine.
        let _ = self.sender.send(message);
    }

    /// Who has a ticket open now (display names).
    pub fn present(&self, ticket: i64) -> Vec<String> {
        self.presence
            .lock()
            .expect("presence lock")
            .get(&ticket)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn enter(self: &Arc<Self>, ticket: i64, name: &str) -> PresenceGuard {
        {
            let mut presence = self.presence.lock().expect("presence lock");
            *presence.entry(ticket).or_default().entry(name.to_owned()).or_default() += 1;
        }
        self.send(LiveMessage::Presence { ticket, names: self.present(ticket) });
        PresenceGuard { live: self.clone(), ticket, name: name.to_owned() }
    }
}

/// Leaves the ticket when the page's stream ends.
struct PresenceGuard {
    live: Arc<Live>,
    ticket: i64,
    name: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        {
            let mut presence = self.live.presence.lock().expect("presence lock");
            if let Some(names) = presence.get_mut(&self.ticket) {
                if let Some(count) = names.get_mut(&self.name) {
                    *count -= 1;
                    if *count == 0 {
                        names.remove(&self.name);
                    }
                }
                if names.is_empty() {
                    presence.remove(&self.ticket);
                }
            }
        }
        self.live.send(LiveMessage::Presence { ticket: self.ticket, names: self.live.present(self.ticket) });
    }
}

/// "Also open: Anna, Béla" for the one who reads it (without themselves).
pub fn presence_text(names: &[String], me: &str, language: Language) -> String {
    let others: Vec<&str> = names.iter().map(String::as_str).filter(|n| *n != me).collect();
    if others.is_empty() {
        tr(language, "Most senki más nem nézi ezt a jegyet.", "Nobody else has this ticket open.").to_owned()
    } else {
        format!("{} {}", tr(language, "Most nyitva van nála:", "Also open by:"), others.join(", "))
    }
}

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    ticket: Option<i64>,
}

/// `GET /console/live[?ticket=N]`: the page's event stream.
pub async fn stream(
    State(state): State<AppState>,
    user: StaffUser,
    Query(query): Query<LiveQuery>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let live = state.console.live.clone();
    let receiver = live.sender.subscribe();
    let guard = query.ticket.map(|ticket| live.enter(ticket, &user.display_name));
    let me = user.display_name.clone();
    let language = user.language;
    let watched = query.ticket;
    let first = watched.map(|ticket| presence_event(ticket, &live.present(ticket), &me, language));
    let updates = tokio_stream::wrappers::BroadcastStream::new(receiver).filter_map(move |message| {
        // The guard lives as long as the stream: the page leaves when its stream ends.
        let _keep = &guard;
        match message {
            Ok(LiveMessage::Changed(numbers)) => {
                Some(Ok(Event::default().event("changed").data(serde_json::json!({ "tickets": numbers }).to_string())))
            }
            Ok(LiveMessage::Presence { ticket, names }) if Some(ticket) == watched => {
                Some(Ok(presence_event(ticket, &names, &me, language)))
            }
            Ok(LiveMessage::Presence { .. }) => None,
            // Missed some: tell the page to look at everything it shows again.
            Err(_) => Some(Ok(Event::default().event("changed").data(r#"{"tickets":[-1]}"#))),
        }
    });
    let stream = tokio_stream::iter(first.map(Ok)).chain(updates);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn presence_event(ticket: i64, names: &[String], me: &str, language: Language) -> Event {
    let text = presence_text(names, me, language);
    Event::default().event("presence").data(serde_json::json!({ "ticket": ticket, "text": text }).to_string())
}

/// Follows the log and announces changed tickets once `ticket_view` shows them.
pub async fn run(live: Arc<Live>, store: SharedStore, database: Database, shutdown: CancellationToken) {
    let head = match committed_head(&database).await {
        Ok(head) => head,
        Err(error) => {
            tracing::warn!(%error, "live updates are off: the store's head cannot be read");
            return;
        }
    };
    let mut subscription = Subscription::new(store, GlobalPosition(head));
    loop {
        // Wait for the next event, then take whatever else has committed with it.
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            first = subscription.next() => match first {
                Ok(first) => subscription.next_batch_now().await.map(|rest| {
                    let mut batch = vec![first];
                    batch.extend(rest);
                    batch
                }),
                Err(error) => Err(error),
            },
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::debug!(%error, "live updates: reading the log failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(last) = batch.last().map(|e| e.position) else { continue };
        let ids: Vec<uuid::Uuid> = batch
            .iter()
            .filter_map(|e| e.stream_id.as_str().strip_prefix(TicketId::STREAM_PREFIX))
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .collect();
        if ids.is_empty() {
            continue;
        }
        // Wait (a little) for the read model the pages read.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            match ticket_projections::checkpoint_of(&database, "ticket_view").await {
                Ok(at) if at >= last => break,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        match numbers_of(&database, &ids).await {
            Ok(numbers) if !numbers.is_empty() => live.send(LiveMessage::Changed(numbers)),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "live updates: reading ticket numbers failed"),
        }
    }
}

async fn committed_head(database: &Database) -> Result<i64, event_store::StoreError> {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM events";
    match database {
        Database::Sqlite { read, .. } => sqlx::query_scalar(sql).fetch_one(read).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .map_err(event_store::StoreError::from_sqlx)
}

async fn numbers_of(database: &Database, ids: &[uuid::Uuid]) -> Result<Vec<i64>, event_store::StoreError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut numbers = Vec::new();
    for chunk in ids.chunks(500) {
        let found: Vec<i64> = match database {
            Database::Sqlite { read, .. } => {
                let marks = vec!["?"; chunk.len()].join(", ");
                let sql = format!("SELECT number FROM ticket_view WHERE ticket_id IN ({marks})");
                let mut query = sqlx::query_scalar(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(read).await
            }
            Database::Postgres(pool) => {
                sqlx::query_scalar("SELECT number FROM ticket_view WHERE ticket_id = ANY($1)")
                    .bind(chunk.to_vec())
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(event_store::StoreError::from_sqlx)?;
        numbers.extend(found);
    }
    Ok(numbers)
}
