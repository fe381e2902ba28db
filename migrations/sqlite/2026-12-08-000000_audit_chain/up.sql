-- The tamper-evident audit log; same columns and tables as migrations/mysql (see the comments
-- there).
ALTER TABLE query_audit ADD COLUMN instance_id TEXT NULL CHECK (instance_id IS NULL OR length(instance_id) BETWEEN 1 AND 64);
ALTER TABLE query_audit ADD COLUMN seq INTEGER NULL CHECK (seq IS NULL OR seq >= 0);
ALTER TABLE query_audit ADD COLUMN prev_hash BLOB NULL CHECK (prev_hash IS NULL OR length(prev_hash) = 32);
ALTER TABLE query_audit ADD COLUMN leaf_hash BLOB NULL CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32);
CREATE UNIQUE INDEX ux_query_audit_chain ON query_audit (instance_id, seq);

CREATE TABLE audit_checkpoints (
    instance_id TEXT    NOT NULL CHECK (length(instance_id) BETWEEN 1 AND 64),
    tree_size   INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    frontier    BLOB    NOT NULL,
    PRIMARY KEY (instance_id, tree_size)
);
