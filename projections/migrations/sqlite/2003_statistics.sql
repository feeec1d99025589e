-- statistics: one row per calendar day (Europe/Budapest), the day's facts encoded with
-- postcard (see projections/src/statistics/facts.rs). day = days since 0001-01-01.
CREATE TABLE stats_days (
    day      INTEGER PRIMARY KEY,
    -- The position of the last event that changed the row: readers cache rows by it.
    revision INTEGER NOT NULL,
    facts    BLOB    NOT NULL
);
