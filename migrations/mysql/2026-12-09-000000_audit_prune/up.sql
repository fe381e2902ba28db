-- Retention of the tamper-evident audit log (docs/audit.md, "Retention"): one row per
-- `audit prune`, written in the same transaction as the deletion of the rows it names. `note`
-- is the signed prune record, the only part `audit verify` trusts; the other columns repeat it
-- for queries. Rows first_seq .. end_seq - 1 of the instance were removed; end_seq is the size
-- of the instance's checkpoint the cut was made at.
CREATE TABLE audit_prunes (
    instance_id VARCHAR(64)   NOT NULL,
    end_seq     BIGINT        NOT NULL,
    first_seq   BIGINT        NOT NULL,
    time_ms     BIGINT        NOT NULL,
    key_version INT           NOT NULL,
    note        VARCHAR(1024) NOT NULL,
    PRIMARY KEY (instance_id, end_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
