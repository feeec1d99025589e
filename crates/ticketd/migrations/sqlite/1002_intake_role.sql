-- The `intake` role (a mail server delivering customer e-mail). SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the same rows.
CREATE TABLE api_tokens_new (
    id         BLOB    PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('agent', 'quality_manager', 'auditor', 'admin', 'intake')),
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
INSERT INTO api_tokens_new (id, name, role, token_hash, created_at, revoked_at)
SELECT id, name, role, token_hash, created_at, revoked_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
