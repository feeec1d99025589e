-- One data key per ticket (its data subject's personal data), wrapped by a key-encryption key
-- that never enters the database. Erasure destroys the wrapped key (crypto-shredding); the row
-- stays as the record that it was erased, so rows are never deleted.
CREATE TABLE personal_keys (
    ticket_id  UUID   PRIMARY KEY,
    kek_id     TEXT,
    wrapped    BYTEA,
    created_at BIGINT NOT NULL, -- microseconds since the Unix epoch, UTC
    erased_at  BIGINT,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_id IS NULL))
);

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
