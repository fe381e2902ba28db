DROP TABLE audit_checkpoints;
ALTER TABLE query_audit
    DROP INDEX ux_query_audit_chain,
    DROP COLUMN instance_id,
    DROP COLUMN seq,
    DROP COLUMN prev_hash,
    DROP COLUMN leaf_hash;
