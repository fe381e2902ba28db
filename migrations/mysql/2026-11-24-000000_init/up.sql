-- pension-gateway initial schema (MySQL 8 / MariaDB 10.5+).
-- utf8mb4_bin: exact, case-sensitive comparison, so session ids and account numbers
-- match byte for byte (a *_ci collation would make session lookup case-insensitive).
CREATE TABLE pension_accounts (
    id          BIGINT      NOT NULL AUTO_INCREMENT,
    account_no  VARCHAR(32) NOT NULL,
    holder_name VARCHAR(64) NOT NULL,
    phone       VARCHAR(20) NOT NULL,
    id_digest   BINARY(32)  NOT NULL,
    status      SMALLINT    NOT NULL,
    opened_at   BIGINT      NULL,
    closed_at   BIGINT      NULL,
    updated_at  BIGINT      NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_pension_accounts_account_no UNIQUE (account_no),
    CONSTRAINT uq_pension_accounts_id_digest UNIQUE (id_digest),
    CONSTRAINT ck_pension_accounts_status CHECK (status BETWEEN 1 AND 4)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE binding_sessions (
    session_id VARCHAR(128) NOT NULL,
    id_digest  BINARY(32)   NULL,
    created_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    PRIMARY KEY (session_id),
    INDEX ix_binding_sessions_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE query_audit (
    id                 BIGINT      NOT NULL AUTO_INCREMENT,
    request_id         VARCHAR(64) NOT NULL,
    received_at_ms     BIGINT      NOT NULL,
    outcome            VARCHAR(32) NOT NULL,
    http_status        SMALLINT    NOT NULL,
    bank_key_version   INT         NOT NULL,
    wechat_key_version INT         NULL,
    id_digest          BINARY(32)  NULL,
    pension_status     SMALLINT    NULL,
    PRIMARY KEY (id),
    INDEX ix_query_audit_request_id (request_id),
    INDEX ix_query_audit_received_at_ms (received_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
