-- API tokens: only a SHA-256 of each token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    id         BLOB    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('agent', 'quality_manager', 'auditor', 'admin')),
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Answers to requests that carried an Idempotency-Key, per caller, so a repeat gets the
-- first answer. `status` is NULL while the first request is still being handled.
CREATE TABLE idempotency_keys (
    actor        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    ticket_id    BLOB    NOT NULL,
    correlation_id BLOB  NOT NULL,
    status       INTEGER,
    body         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (actor, key)
) WITHOUT ROWID;
