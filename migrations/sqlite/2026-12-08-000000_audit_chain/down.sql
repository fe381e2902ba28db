DROP TABLE audit_checkpoints;
DROP INDEX ux_query_audit_chain;
ALTER TABLE query_audit DROP COLUMN leaf_hash;
ALTER TABLE query_audit DROP COLUMN prev_hash;
ALTER TABLE query_audit DROP COLUMN seq;
ALTER TABLE query_audit DROP COLUMN instance_id;
