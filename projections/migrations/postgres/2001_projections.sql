-- Where each projection has got to in the global order; updated in the same transaction as
-- the read model, so no event is applied twice or skipped.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ticket_index: human ticket number -> ticket id.
CREATE TABLE ticket_index (
    number    bigint PRIMARY KEY,
    ticket_id uuid   NOT NULL UNIQUE,
    position  bigint NOT NULL
);
