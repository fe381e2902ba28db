-- Each ticket records the access token that issued it, so a new token invalidates the tickets
-- of the previous one (open-platform guide §4.6). Same column and index as migrations/mysql.
-- Tickets stored before this column existed have no parent and are never valid again.
ALTER TABLE op_grants ADD COLUMN parent_id TEXT NULL CHECK (parent_id IS NULL OR length(parent_id) = 32);
