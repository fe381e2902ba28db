-- Partner channels (docs/partner-channels.md): which channel an audit row belongs to, and the open
-- platform's issued access tokens and tickets, shared by every instance. Grants store ids and
-- times only; their values are derived from the app secret (src/partners/open_platform/grants.rs).
ALTER TABLE query_audit ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT 'wechat';

CREATE TABLE op_grants (
    id             CHAR(32)    NOT NULL,
    app_id         VARCHAR(64) NOT NULL,
    kind           VARCHAR(16) NOT NULL,
    secret_version INT         NOT NULL,
    issued_at_ms   BIGINT      NOT NULL,
    expires_at_ms  BIGINT      NOT NULL,
    used_at_ms     BIGINT      NULL,
    user_ref       BINARY(32)  NULL,
    PRIMARY KEY (id),
    INDEX ix_op_grants_chain (app_id, kind, secret_version, expires_at_ms),
    INDEX ix_op_grants_user (app_id, user_ref),
    INDEX ix_op_grants_expires_at_ms (expires_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
