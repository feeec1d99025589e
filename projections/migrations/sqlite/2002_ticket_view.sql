-- ticket_view: every ticket as it stands, for queues and lists. Timestamps: microseconds, UTC.
CREATE TABLE ticket_view (
    ticket_id        BLOB    PRIMARY KEY,
    number           INTEGER NOT NULL UNIQUE,
    version          INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    category         TEXT,
    service_area     TEXT,
    contract_id      TEXT,
    subject          TEXT    NOT NULL,
    assignee         TEXT,
    escalated_to     TEXT,
    out_of_scope     INTEGER NOT NULL,
    survey           TEXT    NOT NULL,
    received_at      INTEGER NOT NULL,
    first_contact_at INTEGER,
    resolved_at      INTEGER,
    closed_at        INTEGER,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX ticket_view_queue ON ticket_view (status, received_at);
CREATE INDEX ticket_view_assignee ON ticket_view (assignee, status);
