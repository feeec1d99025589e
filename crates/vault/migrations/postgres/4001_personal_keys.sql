-- Data keys, each wrapped by a key-encryption key that never enters the database. Keys are
-- made ahead in batches; a ticket's events name the key they are sealed with, so a ticket's
-- first event needs no write of its own. Erasure destroys the wrapped key (crypto-shredding)
-- and notes the ticket; the row stays as the record that it was erased (an erased ticket with
-- no key gets a row of its own), so rows are never deleted.
CREATE TABLE personal_keys (
    key_id     UUID   PRIMARY KEY,
    ticket_id  UUID,  -- set when erased
    kek_id     TEXT,
    wrapped    BYTEA,
    created_at BIGINT NOT NULL, -- microseconds since the Unix epoch, UTC
    erased_at  BIGINT,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
);
CREATE INDEX personal_keys_erased_tickets ON personal_keys (ticket_id) WHERE ticket_id IS NOT NULL;

CREATE FUNCTION personal_keys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'a data key is erased by destroying it, never by deleting its row';
    END IF;
    IF OLD.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'an erased data key cannot come back';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER personal_keys_guard BEFORE UPDATE OR DELETE ON personal_keys
    FOR EACH ROW EXECUTE FUNCTION personal_keys_guard();
CREATE TRIGGER personal_keys_no_truncate BEFORE TRUNCATE ON personal_keys
    FOR EACH STATEMENT EXECUTE FUNCTION personal_keys_guard();
