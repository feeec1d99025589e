-- statistics: one row per calendar day (Europe/Budapest), the day's facts encoded with
-- postcard (see projections/src/statistics/facts.rs). day = days since 0001-01-01.
CREATE TABLE stats_days (
    day      integer PRIMARY KEY,
    -- The position of the last event that changed the row: readers cache rows by it.
    revision bigint  NOT NULL,
    facts    bytea   NOT NULL
);
-- Read whole on every report: kept uncompressed (postcard is already compact).
ALTER TABLE stats_days ALTER COLUMN facts SET STORAGE EXTERNAL;
