-- pension-gateway initial schema (SQLite 3.35+). Same tables and names as migrations/mysql.
CREATE TABLE pension_accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_no  TEXT    NOT NULL CHECK (length(account_no) BETWEEN 1 AND 32),
    holder_name TEXT    NOT NULL CHECK (length(holder_name) <= 64),
    phone       TEXT    NOT NULL CHECK (length(phone) <= 20),
    id_digest   BLOB    NOT NULL CHECK (length(id_digest) = 32),
    status      INTEGER NOT NULL CHECK (status BETWEEN 1 AND 4),
    opened_at   INTEGER NULL,
    closed_at   INTEGER NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT uq_pension_accounts_account_no UNIQUE (account_no),
    CONSTRAINT uq_pension_accounts_id_digest UNIQUE (id_digest)
);

CREATE TABLE binding_sessions (
    session_id TEXT    NOT NULL PRIMARY KEY CHECK (length(session_id) BETWEEN 1 AND 128),
    id_digest  BLOB    NULL CHECK (id_digest IS NULL OR length(id_digest) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX ix_binding_sessions_expires_at ON binding_sessions (expires_at);

CREATE TABLE query_audit (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id         TEXT    NOT NULL CHECK (length(request_id) <= 64),
    received_at_ms     INTEGER NOT NULL,
    outcome            TEXT    NOT NULL CHECK (length(outcome) <= 32),
    http_status        INTEGER NOT NULL,
    bank_key_version   INTEGER NOT NULL,
    wechat_key_version INTEGER NULL,
    id_digest          BLOB    NULL CHECK (id_digest IS NULL OR length(id_digest) = 32),
    pension_status     INTEGER NULL
);
CREATE INDEX ix_query_audit_request_id ON query_audit (request_id);
CREATE INDEX ix_query_audit_received_at_ms ON query_audit (received_at_ms);
