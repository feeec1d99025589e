-- The event log. Append-only: triggers refuse UPDATE and DELETE.
-- `position` is the global order. SQLite lets one writer commit at a time and assigns rowids
-- inside the write lock, so positions are in commit order: a reader never sees a gap fill later.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version >= 0),
    occurred_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    recorded_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC; the store's clock
    actor          TEXT    NOT NULL CHECK (json_valid(actor)),
    correlation_id BLOB    NOT NULL,
    causation_id   BLOB,
    payload        TEXT    NOT NULL CHECK (json_valid(payload))
);
CREATE UNIQUE INDEX events_stream_version_key ON events (stream_id, version);
CREATE UNIQUE INDEX events_event_id_key ON events (event_id);

CREATE TRIGGER events_are_immutable_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;
CREATE TRIGGER events_are_immutable_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;

-- Named counters (ticket numbers): unique and increasing.
CREATE TABLE sequences (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
