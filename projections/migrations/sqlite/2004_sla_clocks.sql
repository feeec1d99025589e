-- sla_clocks: every SLA clock of every ticket (first contact, resolution, statutory answer):
-- when it warns, when it is due, when it was met; whether its warning and breach are recorded.
-- The SLA scheduler reads the clocks whose time has come. Times: microseconds since the epoch.
CREATE TABLE sla_clocks (
    ticket_id  BLOB    NOT NULL,
    target     TEXT    NOT NULL,
    warn_at_us INTEGER,
    due_at_us  INTEGER,
    met_at_us  INTEGER,
    paused     BOOLEAN NOT NULL,
    warned     BOOLEAN NOT NULL,
    breached   BOOLEAN NOT NULL,
    PRIMARY KEY (ticket_id, target)
);
CREATE INDEX sla_clocks_running ON sla_clocks (due_at_us) WHERE met_at_us IS NULL;
