//! Running registry commands (contracts, divisions) against the `registry` stream, and reading
//! the registry, cached for a few seconds (it changes rarely and is read at every intake).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use event_store::{EventMetadata, ExpectedVersion, Json, NewEvent, READ_EVENTS_MAX, SharedStore, StoreError, StreamId};
use ticket_domain::registry::{REGISTRY_STREAM, Registry, RegistryCommand, RegistryError, RegistryEvent};
use ticket_domain::vocabulary::Actor;

use crate::{Clock, CommandContext};

/// How long a read registry is used before it is read again (changes made through another
/// instance show within this long; this instance's own changes show at once).
pub const REGISTRY_CACHE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RegistryFailure {
    #[error(transparent)]
    Refused(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored registry event cannot be read: {0}")]
    Corrupt(String),
}

/// One change, as the history shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub event: RegistryEvent,
}

pub struct RegistryService {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    cache: Mutex<Option<(Instant, Arc<Registry>)>>,
}

fn stream() -> Result<StreamId, StoreError> {
    StreamId::parse(REGISTRY_STREAM).map_err(StoreError::InvalidInput)
}

impl RegistryService {
    pub fn new(store: SharedStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, cache: Mutex::new(None) }
    }

    /// Every change, oldest first.
    pub async fn history(&self) -> Result<Vec<RegistryRecord>, RegistryFailure> {
        let stream = stream()?;
        let mut records: Vec<RegistryRecord> = Vec::new();
        loop {
            let after = records.last().map_or(0, |r| r.version);
            let page = self.store.read_stream(&stream, after, READ_EVENTS_MAX).await?;
            let done = page.len() < READ_EVENTS_MAX;
            for recorded in page {
                let payload = serde_json::from_str(recorded.payload.get())
                    .map_err(|e| RegistryFailure::Corrupt(e.to_string()))?;
                let event =
                    RegistryEvent::from_stored(&recorded.event_type, payload).map_err(RegistryFailure::Corrupt)?;
                let actor = recorded.metadata.actor.parse().map_err(|e| RegistryFailure::Corrupt(e.to_string()))?;
                records.push(RegistryRecord {
                    version: recorded.version,
                    occurred_at: recorded.occurred_at,
                    recorded_at: recorded.recorded_at,
                    actor,
                    event,
                });
            }
            if done {
                break;
            }
        }
        Ok(records)
    }

    /// The registry now, read from its stream.
    pub async fn load(&self) -> Result<Arc<Registry>, RegistryFailure> {
        let history = self.history().await?;
        let registry = Arc::new(Registry::replay(history.iter().map(|r| &r.event)));
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), registry.clone()));
        }
        Ok(registry)
    }

    /// The registry, at most [`REGISTRY_CACHE`] old.
    pub async fn current(&self) -> Result<Arc<Registry>, RegistryFailure> {
        let cached = self.cache.lock().ok().and_then(|cache| cache.clone());
        match cached {
            Some((read_at, registry)) if read_at.elapsed() < REGISTRY_CACHE => Ok(registry),
            _ => self.load().await,
        }
    }

    /// Checks the references to managed data a command carries (see
    /// `Registry::check_references`). A reference the cached registry lacks is checked again on
    /// the registry read now, so a division added a moment ago (on any instance) is known.
    pub async fn check_references(
        &self,
        command: &ticket_domain::TicketCommand,
    ) -> Result<Result<(), ticket_domain::registry::UnknownReference>, RegistryFailure> {
        if self.current().await?.check_references(command).is_ok() {
            return Ok(Ok(()));
        }
        Ok(self.load().await?.check_references(command))
    }

    /// Decides and appends a change; a lost race with another writer is decided again.
    pub async fn execute(
        &self,
        command: RegistryCommand,
        context: &CommandContext,
    ) -> Result<Arc<Registry>, RegistryFailure> {
        let stream = stream()?;
        let mut attempts = 0;
        loop {
            let registry = self.load().await?;
            let events = registry.decide(command.clone())?;
            let now = self.clock.now().trunc_subsecs(6);
            let new_events = events
                .iter()
                .map(|event| {
                    Ok(NewEvent {
                        event_id: uuid::Uuid::now_v7(),
                        event_type: event.event_type().to_owned(),
                        schema_version: 1,
                        occurred_at: now,
                        metadata: EventMetadata {
                            actor: Json::from_serialize(&context.actor)
                                .map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                            correlation_id: context.correlation_id,
                            causation_id: context.causation_id,
                        },
                        payload: Json::from_value(&event.to_payload()),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            match self.store.append(&stream, ExpectedVersion(registry.version), new_events).await {
                Ok(_) => {
                    let registry = Arc::new(events.iter().fold((*registry).clone(), |r, e| r.evolve(e)));
                    if let Ok(mut cache) = self.cache.lock() {
                        *cache = Some((Instant::now(), registry.clone()));
                    }
                    return Ok(registry);
                }
                Err(StoreError::VersionConflict { .. }) if attempts < 3 => attempts += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }
}
