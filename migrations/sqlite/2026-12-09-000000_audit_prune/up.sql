-- Retention of the tamper-evident audit log; same table as migrations/mysql (see the comments
-- there).
CREATE TABLE audit_prunes (
    instance_id TEXT    NOT NULL CHECK (length(instance_id) BETWEEN 1 AND 64),
    end_seq     INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    PRIMARY KEY (instance_id, end_seq)
);
