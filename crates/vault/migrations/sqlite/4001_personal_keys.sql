-- One data key per ticket (its data subject's personal data), wrapped by a key-encryption key
-- that never enters the database. Erasure destroys the wrapped key (crypto-shredding); the row
-- stays as the record that it was erased, so rows are never deleted.
CREATE TABLE personal_keys (
    ticket_id  BLOB    PRIMARY KEY,
    kek_id     TEXT,
    wrapped    BLOB,
    created_at INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    erased_at  INTEGER,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
) WITHOUT ROWID;

CREATE TRIGGER personal_keys_are_kept BEFORE DELETE ON personal_keys
BEGIN SELECT RAISE(ABORT, 'a data key is erased by destroying it, never by deleting its row'); END;
CREATE TRIGGER personal_keys_stay_erased BEFORE UPDATE ON personal_keys
WHEN OLD.erased_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'an erased data key cannot come back'); END;
