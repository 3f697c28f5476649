-- Every decision appends an audit record, and every index on the log is one more b-tree page
-- written per commit. Two of them served no query:
-- * `hash UNIQUE`: its index is never read (records are found by sequence), and its keys are
--   random, so each record dirtied a page of its own in the WAL and again at the checkpoint.
--   The chain already makes each hash depend on the sequence and the previous hash, and
--   `verify` checks every link; the index added no guarantee.
-- * `sequence BIGINT PRIMARY KEY` was a separate index beside the table's rowid. As
--   `INTEGER PRIMARY KEY` the sequence is the rowid itself (64-bit, as before).
-- SQLite cannot drop a column constraint in place: the table is rebuilt (every record copied
-- as it is) and its indexes and append-only triggers are made again.
CREATE TABLE audit_records_lean (
    sequence     INTEGER PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    client_id    TEXT,
    actor        TEXT NOT NULL,
    recorded_at  TIMESTAMP NOT NULL,
    payload      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
INSERT INTO audit_records_lean
    (sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash)
SELECT sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash
FROM audit_records ORDER BY sequence;
-- Dropping a table fires none of its triggers (they go with it).
DROP TABLE audit_records;
ALTER TABLE audit_records_lean RENAME TO audit_records;
CREATE INDEX audit_by_kind ON audit_records (kind, sequence);
CREATE INDEX audit_by_client ON audit_records (client_id, sequence);
CREATE INDEX audit_by_time ON audit_records (recorded_at);
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
