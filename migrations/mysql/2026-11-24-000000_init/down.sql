DROP TABLE IF EXISTS query_audit;
DROP TABLE IF EXISTS binding_sessions;
DROP TABLE IF EXISTS pension_accounts;
