-- The event log. Append-only: a trigger refuses UPDATE and DELETE.
--
-- `position` is the global order: (the appending transaction's 64-bit id << 16) | the event's
-- index within that transaction. Readers only read positions below
-- (pg_snapshot_xmin(pg_current_snapshot()) << 16): every transaction with a smaller id has
-- finished, and every future one gets a larger id, so no event can later appear below a
-- position a reader has passed, although transactions commit out of order. See ARCHITECTURE.md.
CREATE TABLE events (
    position       bigint      NOT NULL CONSTRAINT events_pkey PRIMARY KEY CHECK (position > 0),
    event_id       uuid        NOT NULL CONSTRAINT events_event_id_key UNIQUE,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL CHECK (version >= 1),
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 0),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    actor          jsonb       NOT NULL,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    payload        jsonb       NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable';
END $$;
CREATE TRIGGER events_are_immutable BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_are_not_truncated BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Ticket numbers: unique and increasing (a rolled-back intake may leave a gap).
CREATE SEQUENCE ticket_number_seq;
