-- ticket_view: every ticket as it stands, for queues and lists.
CREATE TABLE ticket_view (
    ticket_id        uuid        PRIMARY KEY,
    number           bigint      NOT NULL UNIQUE,
    version          bigint      NOT NULL,
    status           text        NOT NULL,
    channel          text        NOT NULL,
    category         text,
    service_area     text,
    contract_id      text,
    subject          text        NOT NULL,
    assignee         text,
    escalated_to     text,
    out_of_scope     boolean     NOT NULL,
    survey           text        NOT NULL,
    received_at      timestamptz NOT NULL,
    first_contact_at timestamptz,
    resolved_at      timestamptz,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX ticket_view_queue ON ticket_view (status, received_at);
CREATE INDEX ticket_view_assignee ON ticket_view (assignee, status);
