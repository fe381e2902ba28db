-- Evidence of what was signed, and the batch each audit row was committed in (docs/audit.md,
-- docs/decisions.md "The audit never claims an answer the caller did not get"). Same columns and
-- tables as migrations/sqlite. Rows written before this migration keep NULL in every new column.
--
-- req_*: WeChat's signed request: the nonce and timestamp as sent in Authorization, the SM3
-- digest e = SM3(Z_A ‖ M) of the signing string under the WeChat key that verified it, and the
-- signature as r ‖ s (64 bytes). resp_*: the same for the bank's signed answer.
ALTER TABLE query_audit
    ADD COLUMN batch_id       BINARY(16)  NULL,
    ADD COLUMN req_nonce      VARCHAR(64) NULL,
    ADD COLUMN req_timestamp  VARCHAR(18) NULL,
    ADD COLUMN req_digest     BINARY(32)  NULL,
    ADD COLUMN req_signature  BINARY(64)  NULL,
    ADD COLUMN resp_nonce     VARCHAR(64) NULL,
    ADD COLUMN resp_timestamp VARCHAR(18) NULL,
    ADD COLUMN resp_digest    BINARY(32)  NULL,
    ADD COLUMN resp_signature BINARY(64)  NULL,
    ADD INDEX ix_query_audit_batch_id (batch_id);

-- One row per audit batch. The batch writes its row (committed = 1) in the same transaction as
-- its audit rows; after a timeout or a lost link, a fresh connection inserts the row itself
-- (committed = 0). The primary key makes the two exclusive: a duplicate key proves the batch
-- committed, a successful insert proves it never will (its own insert would now fail).
CREATE TABLE audit_batches (
    batch_id       BINARY(16) NOT NULL,
    committed      SMALLINT   NOT NULL,
    recorded_at_ms BIGINT     NOT NULL,
    PRIMARY KEY (batch_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Batches that committed although their callers were answered with a signed 503, because the
-- outcome could not be learned in time: every audit row of such a batch was not delivered.
CREATE TABLE audit_undelivered (
    batch_id       BINARY(16) NOT NULL,
    recorded_at_ms BIGINT     NOT NULL,
    PRIMARY KEY (batch_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
