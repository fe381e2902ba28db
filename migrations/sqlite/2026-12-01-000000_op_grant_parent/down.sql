ALTER TABLE op_grants DROP COLUMN parent_id;
