-- Clients: the ERP's profile and the live state projected from events.
-- Money is integer minor units of the client's currency (never float).
CREATE TABLE clients (
    client_id              TEXT PRIMARY KEY NOT NULL,
    name                   TEXT NOT NULL,
    registration_number    TEXT,
    country                TEXT NOT NULL,
    sector                 TEXT,
    currency               TEXT NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    is_prospect            BOOLEAN NOT NULL DEFAULT 0,
    credit_limit_minor     BIGINT NOT NULL CHECK (credit_limit_minor >= 0),
    open_invoices_minor    BIGINT NOT NULL DEFAULT 0,
    overdue_minor          BIGINT NOT NULL DEFAULT 0,
    oldest_overdue_due_on  DATE,
    invoices_paid          BIGINT NOT NULL DEFAULT 0,
    paid_late              BIGINT NOT NULL DEFAULT 0,
    total_days_late        BIGINT NOT NULL DEFAULT 0,
    insurer                TEXT,
    insured_minor          BIGINT,
    insurance_valid_until  DATE,
    score_provider         TEXT,
    external_score         BIGINT,
    external_score_as_of   DATE,
    alerts_negative        BIGINT NOT NULL DEFAULT 0,
    alerts_positive        BIGINT NOT NULL DEFAULT 0,
    legal_status           TEXT NOT NULL DEFAULT 'none',
    risk_score             BIGINT,
    risk_band              TEXT,
    risk_factors           TEXT,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL
);
CREATE INDEX clients_newest ON clients (created_at DESC, client_id DESC);
CREATE INDEX clients_band ON clients (risk_band);
CREATE INDEX clients_status ON clients (status);

-- The audit log: one hash chain, gap-free sequence, canonical JSON payloads.
CREATE TABLE audit_records (
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
CREATE INDEX audit_by_kind ON audit_records (kind, sequence);
CREATE INDEX audit_by_client ON audit_records (client_id, sequence);
CREATE INDEX audit_by_time ON audit_records (recorded_at);

-- The head of the chain: one row, updated in the appending transaction, so that the
-- next sequence and the previous hash are taken under one write lock.
CREATE TABLE audit_head (
    id        INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    sequence  BIGINT NOT NULL,
    hash      TEXT NOT NULL
);
INSERT INTO audit_head (id, sequence, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
