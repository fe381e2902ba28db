-- The tamper-evident audit log (docs/audit.md): every audit row written by the group-commit
-- writer joins the hash chain of the gateway instance that wrote it, and each instance's rows
-- are the leaves of its own RFC 6962 Merkle tree (SM3), whose signed tree heads are kept in
-- audit_checkpoints and appended to the witness file. Same columns and tables as
-- migrations/sqlite. Rows written before this migration (or without the writer) keep NULL in
-- every chain column.
--
-- instance_id: `audit.instance_id` of the writer; seq: the row's place in that instance's chain
-- from 0 (= its leaf index); prev_hash: chain hash of the instance's row seq - 1 (zeros for the
-- first); leaf_hash: SM3(0x00 ‖ canonical leaf of the row) — the row's chain hash.
ALTER TABLE query_audit
    ADD COLUMN instance_id VARCHAR(64) NULL,
    ADD COLUMN seq         BIGINT      NULL,
    ADD COLUMN prev_hash   BINARY(32)  NULL,
    ADD COLUMN leaf_hash   BINARY(32)  NULL,
    ADD UNIQUE INDEX ux_query_audit_chain (instance_id, seq);

-- One signed tree head of an instance's log: `note` is the signed note (docs/audit.md) and the
-- only thing `audit verify` trusts; tree_size, time_ms and key_version repeat it for queries.
-- frontier: the roots of the tree's perfect subtrees at tree_size (32 bytes each, largest
-- first), from which the writer resumes after a restart without reading every leaf; it is
-- checked against the signed root before use.
CREATE TABLE audit_checkpoints (
    instance_id VARCHAR(64)   NOT NULL,
    tree_size   BIGINT        NOT NULL,
    time_ms     BIGINT        NOT NULL,
    key_version INT           NOT NULL,
    note        VARCHAR(1024) NOT NULL,
    frontier    VARBINARY(2048) NOT NULL,
    PRIMARY KEY (instance_id, tree_size)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
