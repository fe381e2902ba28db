DROP TABLE op_grants;
ALTER TABLE query_audit DROP COLUMN channel;
