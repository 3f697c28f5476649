-- Client events: the accepted event log (idempotent by event_id), the invoices and sales
-- alerts projected from it, and the bookkeeping the projection needs on the client row.
-- Money is integer minor units of the client's currency.

-- The log, in arrival order (seq). `body` is the event as accepted, normalised (amounts in
-- the client's currency, times in UTC) and canonical; `body_sha256` answers "same event?".
CREATE TABLE client_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    client_id    TEXT NOT NULL REFERENCES clients (client_id),
    event_type   TEXT NOT NULL,
    occurred_at  TIMESTAMP NOT NULL,
    received_at  TIMESTAMP NOT NULL,
    received_by  TEXT NOT NULL,
    body_sha256  TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX client_events_by_client ON client_events (client_id, seq);
CREATE INDEX client_events_by_type ON client_events (client_id, event_type, seq);

CREATE TRIGGER client_events_append_only BEFORE UPDATE OR DELETE ON client_events
    FOR EACH ROW EXECUTE FUNCTION encours_refuse_change();

-- One row per invoice id of a client, created by the first event naming it. `amount_minor`,
-- `issued_on` and `due_on` stay NULL until `invoice_issued` arrives (a payment may come
-- first). open = max(0, amount - paid - credited); `settled_on` is when it reached 0.
CREATE TABLE invoices (
    client_id       TEXT NOT NULL REFERENCES clients (client_id),
    invoice_id      TEXT NOT NULL,
    amount_minor    BIGINT,
    issued_on       DATE,
    due_on          DATE,
    decision_id     TEXT,
    paid_minor      BIGINT NOT NULL,
    credited_minor  BIGINT NOT NULL,
    open_minor      BIGINT NOT NULL CHECK (open_minor >= 0),
    last_paid_on    DATE,
    dunning_level   INTEGER NOT NULL,
    settled_on      DATE,
    PRIMARY KEY (client_id, invoice_id)
);
CREATE INDEX invoices_open_by_due ON invoices (client_id, open_minor, due_on);
CREATE INDEX invoices_by_issue ON invoices (issued_on);

-- Sales alerts, counted while recent (see docs/events.md).
CREATE TABLE sales_alerts (
    event_seq    BIGINT PRIMARY KEY NOT NULL,
    client_id    TEXT NOT NULL REFERENCES clients (client_id),
    negative     BOOLEAN NOT NULL,
    occurred_at  TIMESTAMP NOT NULL
);
CREATE INDEX sales_alerts_by_client ON sales_alerts (client_id, occurred_at);

-- Overdue amounts and recent alerts are computed when read (as of now), never stored.
ALTER TABLE clients DROP COLUMN overdue_minor;
ALTER TABLE clients DROP COLUMN oldest_overdue_due_on;
ALTER TABLE clients DROP COLUMN alerts_negative;
ALTER TABLE clients DROP COLUMN alerts_positive;
-- When the cover and the legal status in force were reported: an older report arriving
-- later is logged but does not replace them.
ALTER TABLE clients ADD COLUMN insurance_changed_at TIMESTAMP;
ALTER TABLE clients ADD COLUMN legal_status_changed_at TIMESTAMP;
-- The next day time alone changes the client's risk (an invoice 1/31/61/91 days past due,
-- insurance ended, an alert no longer recent): the scheduled review pass picks it up.
ALTER TABLE clients ADD COLUMN next_review_on DATE;
CREATE INDEX clients_review_due ON clients (next_review_on);
