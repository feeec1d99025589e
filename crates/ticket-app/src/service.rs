//! Running commands: load, decide, append, and what to do when another writer was first.

use std::num::NonZeroUsize;

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::{Arc, Mutex};

use event_store::{ExpectedVersion, READ_EVENTS_MAX, Sequence, SharedStore, StoreError, StreamId};
use lru::LruCache;
use ticket_domain::codec::DecodeError;
use ticket_domain::vocabulary::{TicketId, TicketNumber};
use ticket_domain::{DomainError, ReceiveTicket, Ticket, TicketCommand};

use crate::Clock;
use crate::envelope::{CommandContext, TicketRecord, decode, to_new_event};

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The workflow refused it; nothing was written.
    #[error(transparent)]
    Refused(#[from] DomainError),
    #[error("ticket {0} does not exist")]
    NotFound(TicketId),
    /// The caller pinned a version (`If-Match`) and the ticket has moved on.
    #[error("the ticket is at version {actual}, not {expected}: reload it and try again")]
    VersionMismatch { expected: u64, actual: u64 },
    /// Other writers kept winning the race; nothing was written.
    #[error("the ticket changed {attempts} times while this command was decided; try again")]
    Contended { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored event cannot be read: {0}")]
    Corrupt(#[from] DecodeError),
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    pub ticket_id: TicketId,
    /// The ticket after the command.
    pub ticket: Ticket,
    /// The events the command appended, as stored.
    pub records: Vec<TicketRecord>,
    /// True when the command had already been applied by an earlier attempt with the same
    /// correlation id ([`TicketService::execute_once`]): `ticket` and `records` are that
    /// attempt's outcome, read back from the stream, and nothing was appended now.
    pub already_applied: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Tickets kept folded in memory, so that a command need not read its stream first.
    /// Safe with several instances: the append's expected-version check catches a stale
    /// entry, which is then dropped and the command decided again on a fresh read. 0: no cache.
    pub cache_capacity: usize,
    /// How many times a command is decided again after losing a race (without `If-Match`).
    pub conflict_retries: u32,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self { cache_capacity: 10_000, conflict_retries: 5 }
    }
}

/// Commands on one ticket run one at a time in this process (a lock per stripe of tickets):
/// racing commands on a ticket are decided in turn instead of failing each other's appends.
/// Commands on different tickets still run together (and share commits). Across processes the
/// append's version check still decides.
const TICKET_LOCK_STRIPES: usize = 1_024;

pub struct TicketService {
    store: SharedStore,
    ticket_locks: Vec<tokio::sync::Mutex<()>>,
    clock: Arc<dyn Clock>,
    /// A std mutex: held for a map lookup or insert, never across an await.
    cache: Option<Mutex<LruCache<TicketId, Ticket>>>,
    options: ServiceOptions,
}

impl TicketService {
    pub fn new(store: SharedStore, clock: Arc<dyn Clock>, options: ServiceOptions) -> Self {
        let cache = NonZeroUsize::new(options.cache_capacity).map(|capacity| Mutex::new(LruCache::new(capacity)));
        let ticket_locks = (0..TICKET_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        Self { store, ticket_locks, clock, cache, options }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Creates a ticket: allocates its number, then runs `Receive`.
    pub async fn open_ticket(
        &self,
        context: &CommandContext,
        receive: impl FnOnce(TicketNumber) -> ReceiveTicket,
    ) -> Result<CommandOutcome, AppError> {
        let command = TicketCommand::Receive(receive(self.next_number().await?));
        self.execute_new(TicketId::new(), command, context).await
    }

    /// Creates a ticket under an id chosen beforehand (so that a caller can record which
    /// ticket a message goes to before creating it). A second `Receive` on the same id is
    /// refused: the id makes the creation happen at most once.
    pub async fn open_ticket_as(
        &self,
        ticket_id: TicketId,
        context: &CommandContext,
        receive: impl FnOnce(TicketNumber) -> ReceiveTicket,
    ) -> Result<CommandOutcome, AppError> {
        let command = TicketCommand::Receive(receive(self.next_number().await?));
        self.execute_on(ticket_id, None, command, context, Known::Unread).await
    }

    /// The next human ticket number (unique and increasing).
    pub async fn next_number(&self) -> Result<TicketNumber, AppError> {
        let number = self.store.next_sequence_value(Sequence::TicketNumber).await?;
        Ok(TicketNumber::new(number)
            .map_err(|e| StoreError::Database(format!("the ticket number sequence returned {number}: {e}")))?)
    }

    /// Runs `command` on the ticket. With `expected_version` (an `If-Match`), the command runs
    /// only on that version; without, a lost race is decided again on the new state.
    pub async fn execute(
        &self,
        ticket_id: TicketId,
        expected_version: Option<u64>,
        command: TicketCommand,
        context: &CommandContext,
    ) -> Result<CommandOutcome, AppError> {
        self.execute_on(ticket_id, expected_version, command, context, Known::Unread).await
    }

    /// Runs `command` at most once for `context.correlation_id` (one per `Idempotency-Key`),
    /// however many attempts run it, in however many processes, at whatever time.
    ///
    /// - Its events get ids derived from the correlation id ([`idempotent_event_id`]), so two
    ///   applications cannot both be stored: the store's unique event id refuses the second
    ///   (`DuplicateEvent`, or `already_stored` at the same place).
    /// - Every decision made on the stream as read from the store first looks for an event
    ///   carrying the correlation id; a lost race, a refused duplicate or a refusal decided on
    ///   the cache reads the store again. When the command was already applied, the answer is
    ///   that application's outcome (the ticket replayed up to its last event,
    ///   `already_applied`), never a second application or a refusal of the repeat.
    ///
    /// `new`: the ticket id was made up for this attempt, so its stream is taken to be empty
    /// without reading it (the append's version check catches it if not).
    pub async fn execute_once(
        &self,
        ticket_id: TicketId,
        expected_version: Option<u64>,
        command: TicketCommand,
        context: &CommandContext,
        new: bool,
    ) -> Result<CommandOutcome, AppError> {
        let known = if new { Known::New } else { Known::Unread };
        self.execute_with(ticket_id, expected_version, command, context, known, Once::Yes).await
    }

    /// What a command with this correlation id did to the ticket, if it was applied: the
    /// ticket replayed up to the last event carrying it, and those events.
    pub async fn applied(
        &self,
        ticket_id: TicketId,
        correlation_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, AppError> {
        let records = self.records(&stream_id(ticket_id)).await?;
        Ok(applied_outcome(ticket_id, &records, correlation_id))
    }

    /// Runs `command` on a ticket whose id the caller has just made up (a new random id), without
    /// reading its stream first: it is empty. Were it not, the append's version check would
    /// refuse the write and the command be decided again on what is stored.
    pub async fn execute_new(
        &self,
        ticket_id: TicketId,
        command: TicketCommand,
        context: &CommandContext,
    ) -> Result<CommandOutcome, AppError> {
        self.execute_on(ticket_id, None, command, context, Known::New).await
    }

    async fn execute_on(
        &self,
        ticket_id: TicketId,
        expected_version: Option<u64>,
        command: TicketCommand,
        context: &CommandContext,
        known: Known,
    ) -> Result<CommandOutcome, AppError> {
        self.execute_with(ticket_id, expected_version, command, context, known, Once::No).await
    }

    async fn execute_with(
        &self,
        ticket_id: TicketId,
        expected_version: Option<u64>,
        command: TicketCommand,
        context: &CommandContext,
        known: Known,
        once: Once,
    ) -> Result<CommandOutcome, AppError> {
        let kind = command.kind().name();
        let result = self.decide_and_append(ticket_id, expected_version, command, context, known, once).await;
        let outcome = match &result {
            Ok(_) => "applied",
            Err(AppError::Refused(_)) => "refused",
            Err(AppError::NotFound(_)) => "not_found",
            Err(AppError::VersionMismatch { .. }) => "version_mismatch",
            Err(AppError::Contended { .. }) => "contended",
            Err(AppError::Store(_)) => "store_error",
            Err(AppError::Corrupt(_)) => "corrupt",
        };
        metrics::counter!("ticketd_commands_total", "command" => kind, "outcome" => outcome).increment(1);
        result
    }

    #[tracing::instrument(level = "debug", skip(self, command, context), fields(command = command.kind().name()))]
    async fn decide_and_append(
        &self,
        ticket_id: TicketId,
        expected_version: Option<u64>,
        command: TicketCommand,
        context: &CommandContext,
        known: Known,
        once: Once,
    ) -> Result<CommandOutcome, AppError> {
        let once = once == Once::Yes;
        let stream = stream_id(ticket_id);
        let stripe = (ticket_id.as_uuid().as_u128() % TICKET_LOCK_STRIPES as u128) as usize;
        let _turn = self.ticket_locks[stripe].lock().await;
        let mut from_cache_allowed = true;
        let mut known_new = known == Known::New;
        for attempt in 0..=self.options.conflict_retries {
            // A belief about the stream (the cache, or "it is new") is checked by the append.
            let (ticket, from_cache) = if std::mem::take(&mut known_new) {
                (Ticket::default(), true)
            } else if once {
                match self.cached(ticket_id).filter(|_| from_cache_allowed) {
                    Some(ticket) => (ticket, true),
                    None => {
                        // What the store holds: if this command was applied already, that is
                        // the answer.
                        let records = self.records(&stream).await?;
                        if let Some(outcome) = applied_outcome(ticket_id, &records, context.correlation_id) {
                            return Ok(outcome);
                        }
                        (Ticket::replay(records.iter().map(|r| (&r.event, r.occurred_at))), false)
                    }
                }
            } else {
                self.load_folded(ticket_id, &stream, from_cache_allowed).await?
            };
            if let Some(expected) = expected_version
                && expected != ticket.version()
            {
                if from_cache {
                    // The cache may be behind another instance's write: check the store.
                    from_cache_allowed = false;
                    self.forget(ticket_id);
                    continue;
                }
                return Err(AppError::VersionMismatch { expected, actual: ticket.version() });
            }
            // Stored timestamps keep microseconds; so does what we answer from memory.
            let now = self.clock.now().trunc_subsecs(6);
            let events = match ticket.decide(command.clone(), now) {
                Ok(events) => events,
                Err(_) if once && from_cache => {
                    // The cache cannot say whether an earlier attempt applied this command (and
                    // so made it refusable): decide again on what the store holds.
                    from_cache_allowed = false;
                    continue;
                }
                Err(refusal) => return Err(refusal.into()),
            };
            let new_events: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    let mut new_event = to_new_event(event, context, now);
                    if once {
                        new_event.event_id = idempotent_event_id(context.correlation_id, index);
                    }
                    new_event
                })
                .collect();
            let event_ids: Vec<_> = new_events.iter().map(|e| e.event_id).collect();
            match self.store.append(&stream, ExpectedVersion(ticket.version()), new_events).await {
                Ok(outcome) if outcome.already_stored => {
                    // Another attempt stored these very events (same ids, same place) first:
                    // answer what it stored, not what this attempt decided.
                    self.forget(ticket_id);
                    return self.applied(ticket_id, context.correlation_id).await?.ok_or_else(|| {
                        StoreError::Database(format!(
                            "{stream}: the store reported events as already stored that it does not hold"
                        ))
                        .into()
                    });
                }
                Ok(outcome) => {
                    let mut ticket = ticket;
                    let mut records = Vec::with_capacity(events.len());
                    for (index, event) in events.into_iter().enumerate() {
                        ticket = ticket.evolve(&event, now);
                        records.push(TicketRecord {
                            position: outcome.positions[index],
                            version: outcome.version - (outcome.positions.len() - 1 - index) as u64,
                            event_id: event_ids[index],
                            occurred_at: now,
                            recorded_at: outcome.recorded_at,
                            actor: context.actor.clone(),
                            correlation_id: context.correlation_id,
                            causation_id: context.causation_id,
                            event,
                        });
                    }
                    self.remember(ticket_id, &ticket);
                    return Ok(CommandOutcome { ticket_id, ticket, records, already_applied: false });
                }
                Err(StoreError::DuplicateEvent { event_id }) if once => {
                    // Another attempt applied this command on another version of the stream.
                    self.forget(ticket_id);
                    return self.applied(ticket_id, context.correlation_id).await?.ok_or_else(|| {
                        StoreError::Database(format!("{stream}: event {event_id} is stored, but not in this stream"))
                            .into()
                    });
                }
                Err(StoreError::VersionConflict { actual, .. }) => {
                    self.forget(ticket_id);
                    from_cache_allowed = false;
                    // Once: the next round looks for this command's events before the version.
                    if let Some(expected) = expected_version
                        && !from_cache
                        && !once
                    {
                        return Err(AppError::VersionMismatch { expected, actual });
                    }
                    tracing::debug!(attempt, actual, "lost an append race; deciding again");
                }
                Err(error) => {
                    self.forget(ticket_id);
                    return Err(error.into());
                }
            }
        }
        Err(AppError::Contended { attempts: self.options.conflict_retries + 1 })
    }

    /// The ticket as it stands, read from the store (never from the cache).
    pub async fn load(&self, ticket_id: TicketId) -> Result<Ticket, AppError> {
        let (ticket, _) = self.load_folded(ticket_id, &stream_id(ticket_id), false).await?;
        if ticket.state().is_none() {
            return Err(AppError::NotFound(ticket_id));
        }
        Ok(ticket)
    }

    /// The ticket exactly as it stood at `instant`: its events that occurred up to then (the
    /// time the service decided each step, the time the API shows for it), replayed.
    /// `NotFound` if it had not been received yet.
    pub async fn load_as_of(&self, ticket_id: TicketId, instant: DateTime<Utc>) -> Result<Ticket, AppError> {
        let history = self.history(ticket_id).await?;
        let ticket = Ticket::replay(
            history
                .iter()
                .take_while(|record| record.occurred_at <= instant)
                .map(|record| (&record.event, record.occurred_at)),
        );
        if ticket.state().is_none() {
            return Err(AppError::NotFound(ticket_id));
        }
        Ok(ticket)
    }

    /// Every event of the ticket, in order, with its envelope.
    pub async fn history(&self, ticket_id: TicketId) -> Result<Vec<TicketRecord>, AppError> {
        let records = self.records(&stream_id(ticket_id)).await?;
        if records.is_empty() {
            return Err(AppError::NotFound(ticket_id));
        }
        Ok(records)
    }

    /// Every event of the stream (none if it does not exist), read from the store.
    async fn records(&self, stream: &StreamId) -> Result<Vec<TicketRecord>, AppError> {
        let mut records = Vec::new();
        loop {
            let after = records.last().map_or(0, |r: &TicketRecord| r.version);
            let page = self.store.read_stream(stream, after, READ_EVENTS_MAX).await?;
            let done = page.len() < READ_EVENTS_MAX;
            for recorded in &page {
                records.push(decode(recorded)?);
            }
            if done {
                break;
            }
        }
        Ok(records)
    }

    async fn load_folded(
        &self,
        ticket_id: TicketId,
        stream: &StreamId,
        from_cache_allowed: bool,
    ) -> Result<(Ticket, bool), AppError> {
        if from_cache_allowed
            && let Some(cache) = &self.cache
            && let Some(ticket) = cache.lock().expect("cache lock").get(&ticket_id)
        {
            return Ok((ticket.clone(), true));
        }
        let mut ticket = Ticket::default();
        loop {
            let page = self.store.read_stream(stream, ticket.version(), READ_EVENTS_MAX).await?;
            let done = page.len() < READ_EVENTS_MAX;
            for recorded in &page {
                let record = decode(recorded)?;
                ticket = ticket.evolve(&record.event, record.occurred_at);
            }
            if done {
                break;
            }
        }
        Ok((ticket, false))
    }

    fn cached(&self, ticket_id: TicketId) -> Option<Ticket> {
        self.cache.as_ref().and_then(|cache| cache.lock().expect("cache lock").get(&ticket_id).cloned())
    }

    fn remember(&self, ticket_id: TicketId, ticket: &Ticket) {
        if let Some(cache) = &self.cache {
            cache.lock().expect("cache lock").put(ticket_id, ticket.clone());
        }
    }

    fn forget(&self, ticket_id: TicketId) {
        if let Some(cache) = &self.cache {
            cache.lock().expect("cache lock").pop(&ticket_id);
        }
    }
}

/// Whether a command is applied at most once per correlation id ([`TicketService::execute_once`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Once {
    No,
    Yes,
}

/// The id of the `index`-th event a command applied at most once
/// ([`TicketService::execute_once`]) appends: the same for every attempt with this correlation
/// id, so the store's unique event id stores only one application.
pub fn idempotent_event_id(correlation_id: uuid::Uuid, index: usize) -> uuid::Uuid {
    uuid::Uuid::new_v5(&correlation_id, format!("ticketd/idempotent-event/{index}").as_bytes())
}

/// The outcome of the command with this correlation id, if the records hold its events.
fn applied_outcome(
    ticket_id: TicketId,
    records: &[TicketRecord],
    correlation_id: uuid::Uuid,
) -> Option<CommandOutcome> {
    let last = records.iter().rposition(|r| r.correlation_id == correlation_id)?;
    let ticket = Ticket::replay(records[..=last].iter().map(|r| (&r.event, r.occurred_at)));
    let records = records[..=last].iter().filter(|r| r.correlation_id == correlation_id).cloned().collect();
    Some(CommandOutcome { ticket_id, ticket, records, already_applied: true })
}

/// What a command may assume about its ticket's stream before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Nothing: read it (or take the cache's copy).
    Unread,
    /// The stream is a new random id's, so it is empty.
    New,
}

pub fn stream_id(ticket_id: TicketId) -> StreamId {
    StreamId::parse(&ticket_id.stream_name()).expect("a ticket's stream name is a valid stream id")
}
