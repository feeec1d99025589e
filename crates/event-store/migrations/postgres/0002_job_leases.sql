-- One leader per background job among the instances sharing this database (see
-- crates/event-store/src/lease.rs). Expiry is judged by the database's clock; each take-over
-- increments the epoch, and every batch a leader writes re-checks (job, holder, epoch) in its
-- own transaction.
CREATE TABLE job_leases (
    job        text        PRIMARY KEY,
    holder     text        NOT NULL,
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL
);
