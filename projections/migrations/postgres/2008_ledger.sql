-- The tamper-evident ledger (ARCHITECTURE.md, "The ledger"): an RFC 6962 Merkle tree over the
-- global order. Append-only like the events: triggers refuse UPDATE, DELETE and TRUNCATE.
-- Never rebuilt. Its place in the log is the `ledger` row of projection_checkpoints.

-- One leaf per stored event, in the global order.
CREATE TABLE ledger_leaves (
    leaf_index bigint PRIMARY KEY,
    position   bigint NOT NULL UNIQUE,
    event_id   uuid   NOT NULL,
    leaf_hash  bytea  NOT NULL
);

-- The hash of every complete subtree above the leaves, by Go sumdb/tlog's stored-hash index.
CREATE TABLE ledger_nodes (
    stored_index bigint PRIMARY KEY,
    hash         bytea  NOT NULL
);

-- Signed checkpoints (C2SP signed note): the tree's size and root at an instant.
CREATE TABLE ledger_checkpoints (
    tree_size bigint PRIMARY KEY,
    root_hash bytea  NOT NULL,
    signed_at bigint NOT NULL,
    note      text   NOT NULL
);

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END $$;
CREATE TRIGGER ledger_leaves_are_immutable BEFORE UPDATE OR DELETE ON ledger_leaves
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_leaves_are_not_truncated BEFORE TRUNCATE ON ledger_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_nodes_are_immutable BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_nodes_are_not_truncated BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_checkpoints_are_immutable BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_checkpoints_are_not_truncated BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
