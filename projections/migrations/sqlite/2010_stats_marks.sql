-- Each fact a chart of the quality dashboard can drill into, with the ticket it is about: the
-- list behind a bar holds exactly what the bar counts. Written by the `stats_marks` projection
-- from the same facts as `stats_days` (a database made before this table fills it from the
-- log on the next start, in its own projection: the day statistics stay as they are).
CREATE TABLE stats_marks (
    -- The fact's calendar day in the reporting time zone (days since 0001-01-01).
    day          INTEGER NOT NULL,
    -- What it counts: see `Mark` in projections/src/statistics/marks.rs.
    kind         INTEGER NOT NULL,
    -- The ticket's dimensions at that moment, coded as in `stats_days`.
    category     INTEGER NOT NULL,
    service_area INTEGER NOT NULL,
    channel      INTEGER NOT NULL,
    -- The division holding the ticket then (or escalated to, answering).
    division     TEXT,
    -- A root cause, or a survey's score.
    detail       TEXT,
    -- An answered survey: the day it was sent.
    sent_day     INTEGER,
    ticket_id    BLOB NOT NULL,
    at_us        INTEGER NOT NULL,
    position     INTEGER NOT NULL
);
CREATE INDEX stats_marks_kind_day ON stats_marks (kind, day);
-- The few tickets under restricted processing, found without reading every ticket.
CREATE INDEX ticket_view_restricted ON ticket_view (ticket_id) WHERE restricted = 1;
