-- statistics: one row per calendar day (Europe/Budapest), the day's facts encoded with
-- postcard (see projections/src/statistics/facts.rs). day = days since 0001-01-01.
CREATE TABLE stats_days (
    day   INTEGER PRIMARY KEY,
    facts BLOB    NOT NULL
);
