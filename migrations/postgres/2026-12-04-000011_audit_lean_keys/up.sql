-- The unique index on the audit records' hash served no query: records are found by
-- sequence, and the chain (each hash covers the sequence and the previous hash, `verify`
-- checks every link) already gives what it promised. Each decision's record paid for a
-- random page of it. (SQLite also makes the sequence its rowid; PostgreSQL's primary key
-- on the sequence stays.)
ALTER TABLE audit_records DROP CONSTRAINT audit_records_hash_key;
