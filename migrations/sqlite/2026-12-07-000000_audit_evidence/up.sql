-- Evidence of what was signed, and the batch each audit row was committed in; same columns and
-- tables as migrations/mysql (see the comments there).
ALTER TABLE query_audit ADD COLUMN batch_id BLOB NULL CHECK (batch_id IS NULL OR length(batch_id) = 16);
ALTER TABLE query_audit ADD COLUMN req_nonce TEXT NULL CHECK (req_nonce IS NULL OR length(req_nonce) BETWEEN 1 AND 64);
ALTER TABLE query_audit ADD COLUMN req_timestamp TEXT NULL CHECK (req_timestamp IS NULL OR length(req_timestamp) BETWEEN 1 AND 18);
ALTER TABLE query_audit ADD COLUMN req_digest BLOB NULL CHECK (req_digest IS NULL OR length(req_digest) = 32);
ALTER TABLE query_audit ADD COLUMN req_signature BLOB NULL CHECK (req_signature IS NULL OR length(req_signature) = 64);
ALTER TABLE query_audit ADD COLUMN resp_nonce TEXT NULL CHECK (resp_nonce IS NULL OR length(resp_nonce) BETWEEN 1 AND 64);
ALTER TABLE query_audit ADD COLUMN resp_timestamp TEXT NULL CHECK (resp_timestamp IS NULL OR length(resp_timestamp) BETWEEN 1 AND 18);
ALTER TABLE query_audit ADD COLUMN resp_digest BLOB NULL CHECK (resp_digest IS NULL OR length(resp_digest) = 32);
ALTER TABLE query_audit ADD COLUMN resp_signature BLOB NULL CHECK (resp_signature IS NULL OR length(resp_signature) = 64);
CREATE INDEX ix_query_audit_batch_id ON query_audit (batch_id);

CREATE TABLE audit_batches (
    batch_id       BLOB    NOT NULL PRIMARY KEY CHECK (length(batch_id) = 16),
    committed      INTEGER NOT NULL CHECK (committed IN (0, 1)),
    recorded_at_ms INTEGER NOT NULL
);

CREATE TABLE audit_undelivered (
    batch_id       BLOB    NOT NULL PRIMARY KEY CHECK (length(batch_id) = 16),
    recorded_at_ms INTEGER NOT NULL
);
