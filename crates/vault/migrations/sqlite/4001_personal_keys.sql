-- Data keys, each wrapped by a key-encryption key that never enters the database. Keys are
-- made ahead in batches; a ticket's events name the key they are sealed with, so a ticket's
-- first event needs no write of its own. Erasure destroys the wrapped key (crypto-shredding)
-- and notes the ticket; the row stays as the record that it was erased (an erased ticket with
-- no key gets a row of its own), so rows are never deleted.
CREATE TABLE personal_keys (
    key_id     BLOB    PRIMARY KEY,
    ticket_id  BLOB,   -- set when erased
    kek_id     TEXT,
    wrapped    BLOB,
    created_at INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    erased_at  INTEGER,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
) WITHOUT ROWID;
CREATE INDEX personal_keys_erased_tickets ON personal_keys (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE TRIGGER personal_keys_are_kept BEFORE DELETE ON personal_keys
BEGIN SELECT RAISE(ABORT, 'a data key is erased by destroying it, never by deleting its row'); END;
CREATE TRIGGER personal_keys_stay_erased BEFORE UPDATE ON personal_keys
WHEN OLD.erased_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'an erased data key cannot come back'); END;
