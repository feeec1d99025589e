-- The transactional outbox: one row per mail an event calls for, written by the `mail_outbox`
-- projection in the same transaction as its checkpoint (so each event enqueues its mails
-- exactly once), then sent by the dispatcher, retried with backoff until delivered.
-- Times are microseconds since the Unix epoch.
CREATE TABLE mail_outbox (
    id              TEXT    PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    ticket_id       TEXT    NOT NULL,
    ticket_version  BIGINT NOT NULL,
    position        BIGINT NOT NULL,
    message_id      TEXT    NOT NULL UNIQUE,
    -- The survey link's secret until the survey mail is sent (only its hash is kept after).
    survey_token    TEXT,
    -- pending -> sent (accepted by the mail server) -> done (follow-up recorded);
    -- skipped (nothing to send, with the reason in last_error); failed (refused for good).
    status          TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_us BIGINT NOT NULL,
    lease_until_us  BIGINT,
    last_error      TEXT,
    recipient       TEXT,
    subject         TEXT,
    created_us      BIGINT NOT NULL,
    sent_us         BIGINT,
    UNIQUE (event_id, kind)
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_us);
CREATE INDEX mail_outbox_ticket ON mail_outbox (ticket_id, created_us);

-- Every Message-ID that belongs to a ticket: the mails we send (`out`) and the ones we took in
-- (`in`). Replies are threaded on it; an incoming message seen before is not taken twice.
CREATE TABLE mail_threads (
    message_id TEXT    PRIMARY KEY,
    ticket_id  TEXT    NOT NULL,
    direction  TEXT    NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE INDEX mail_threads_ticket ON mail_threads (ticket_id, created_us);

-- Survey links: the SHA-256 of the link's secret -> the ticket.
CREATE TABLE survey_tokens (
    token_hash TEXT    PRIMARY KEY,
    ticket_id  TEXT    NOT NULL,
    created_us BIGINT NOT NULL
);

-- The outbox starts at the end of the log as it is now: history recorded before mail existed
-- must not send mail years late.
INSERT INTO projection_checkpoints (name, position)
SELECT 'mail_outbox', COALESCE(MAX(position), 0) FROM events;
