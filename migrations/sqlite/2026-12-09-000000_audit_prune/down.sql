DROP TABLE audit_prunes;
