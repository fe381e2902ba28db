-- Partner channels (docs/partner-channels.md); same tables and names as migrations/mysql.
ALTER TABLE query_audit ADD COLUMN channel TEXT NOT NULL DEFAULT 'wechat' CHECK (length(channel) <= 16);

CREATE TABLE op_grants (
    id             TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    app_id         TEXT    NOT NULL CHECK (length(app_id) BETWEEN 1 AND 64),
    kind           TEXT    NOT NULL CHECK (kind IN ('access_token', 'sign', 'user')),
    secret_version INTEGER NOT NULL,
    issued_at_ms   INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    used_at_ms     INTEGER NULL,
    user_ref       BLOB    NULL CHECK (user_ref IS NULL OR length(user_ref) = 32)
);
CREATE INDEX ix_op_grants_chain ON op_grants (app_id, kind, secret_version, expires_at_ms);
CREATE INDEX ix_op_grants_user ON op_grants (app_id, user_ref);
CREATE INDEX ix_op_grants_expires_at_ms ON op_grants (expires_at_ms);
