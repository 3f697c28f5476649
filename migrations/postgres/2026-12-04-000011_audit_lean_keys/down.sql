ALTER TABLE audit_records ADD CONSTRAINT audit_records_hash_key UNIQUE (hash);
