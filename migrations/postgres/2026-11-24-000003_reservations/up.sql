-- Credit reserved by approved decisions until the order is invoiced, cancelled or the
-- reservation expires. A client's reserved exposure is the sum of its active, unexpired
-- reservations, computed when read: an expired reservation is never counted, swept or not.
CREATE TABLE reservations (
    decision_id   TEXT PRIMARY KEY NOT NULL,
    client_id     TEXT NOT NULL REFERENCES clients (client_id),
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    status        TEXT NOT NULL CHECK (status IN ('active', 'invoiced', 'released', 'expired')),
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    settled_at    TIMESTAMP,
    settled_by    TEXT
);
CREATE INDEX reservations_by_client ON reservations (client_id, status, expires_at);
CREATE INDEX reservations_due ON reservations (status, expires_at);
