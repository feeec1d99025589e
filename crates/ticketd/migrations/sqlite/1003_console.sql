-- The staff console. People are the registry's staff directory; what is secret about them is
-- kept here, never in an event: the argon2id hash of their password and their TOTP secret.
CREATE TABLE staff_credentials (
    name          TEXT   PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    totp_secret   TEXT,
    changed_at    BIGINT NOT NULL
);

-- Signed-in browsers: only the SHA-256 of the 256-bit cookie token is kept. Times in
-- microseconds since the epoch (the service's clock).
CREATE TABLE console_sessions (
    token_hash TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    csrf_token TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
CREATE INDEX console_sessions_name ON console_sessions (name);

-- A user's named set of queue filters.
CREATE TABLE saved_views (
    owner TEXT NOT NULL,
    name  TEXT NOT NULL,
    queue TEXT NOT NULL,
    query TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);

-- Replies agents start from, kept by admins.
CREATE TABLE canned_replies (
    id         TEXT    PRIMARY KEY,
    title      TEXT    NOT NULL,
    language   TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    retired    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT  NOT NULL
);
