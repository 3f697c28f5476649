CREATE TABLE audit_records_keyed (
    sequence     BIGINT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    client_id    TEXT,
    actor        TEXT NOT NULL,
    recorded_at  TIMESTAMP NOT NULL,
    payload      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE
);
INSERT INTO audit_records_keyed
    (sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash)
SELECT sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash
FROM audit_records ORDER BY sequence;
DROP TABLE audit_records;
ALTER TABLE audit_records_keyed RENAME TO audit_records;
CREATE INDEX audit_by_kind ON audit_records (kind, sequence);
CREATE INDEX audit_by_client ON audit_records (client_id, sequence);
CREATE INDEX audit_by_time ON audit_records (recorded_at);
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
