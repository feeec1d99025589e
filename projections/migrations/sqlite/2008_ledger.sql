-- The tamper-evident ledger (ARCHITECTURE.md, "The ledger"): an RFC 6962 Merkle tree over the
-- global order. Append-only like the events: triggers refuse UPDATE and DELETE. Never rebuilt.
-- Its place in the log is the `ledger` row of projection_checkpoints.

-- One leaf per stored event, in the global order.
CREATE TABLE ledger_leaves (
    leaf_index INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL UNIQUE,
    event_id   BLOB    NOT NULL,
    leaf_hash  BLOB    NOT NULL
);

-- The hash of every complete subtree above the leaves, by Go sumdb/tlog's stored-hash index.
CREATE TABLE ledger_nodes (
    stored_index INTEGER PRIMARY KEY,
    hash         BLOB    NOT NULL
);

-- Signed checkpoints (C2SP signed note): the tree's size and root at an instant.
CREATE TABLE ledger_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB    NOT NULL,
    signed_at INTEGER NOT NULL,
    note      TEXT    NOT NULL
);

CREATE TRIGGER ledger_leaves_are_immutable_update BEFORE UPDATE ON ledger_leaves
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_leaves_are_immutable_delete BEFORE DELETE ON ledger_leaves
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_nodes_are_immutable_update BEFORE UPDATE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_nodes_are_immutable_delete BEFORE DELETE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_checkpoints_are_immutable_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_checkpoints_are_immutable_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
