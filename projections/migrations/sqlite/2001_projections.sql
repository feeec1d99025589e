-- Where each projection has got to in the global order; updated in the same transaction as
-- the read model, so no event is applied twice or skipped.
CREATE TABLE projection_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- ticket_index: human ticket number -> ticket id.
CREATE TABLE ticket_index (
    number    INTEGER PRIMARY KEY,
    ticket_id BLOB    NOT NULL UNIQUE,
    position  INTEGER NOT NULL
);
