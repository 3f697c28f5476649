-- A client's version: bumped by every write that changes what a credit decision reads of the
-- client (its row, its reservations, invoices and sales alerts), so the decision writer checks
-- that the state a draft was made on still holds with one comparison instead of reading the
-- client again. Triggers do the bumping, so no write path can forget it.
ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- The row itself (profile, ledger, limit reviews); a write that sets the version itself is
-- one of the triggers below.
CREATE TRIGGER clients_version_on_update AFTER UPDATE ON clients
WHEN NEW.version = OLD.version
BEGIN
    UPDATE clients SET version = OLD.version + 1 WHERE client_id = NEW.client_id;
END;

CREATE TRIGGER reservations_version_on_insert AFTER INSERT ON reservations
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
END;
-- Any change of a reservation may change the reserved credit but one: the expiry sweep
-- marking a reservation that already stopped counting at its `expires_at` (settled at or after
-- it; amount, expiry and client unchanged). A draft's own validity ends at the first expiry it
-- counted (see the decision writer), and the sweep holds no client lock on PostgreSQL, so it
-- must not take one through this trigger.
CREATE TRIGGER reservations_version_on_update AFTER UPDATE ON reservations
WHEN NOT (NEW.settled_at IS NOT NULL AND NEW.settled_at >= OLD.expires_at
          AND NEW.expires_at = OLD.expires_at AND NEW.amount_minor = OLD.amount_minor
          AND NEW.client_id = OLD.client_id)
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER reservations_version_on_delete AFTER DELETE ON reservations
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = OLD.client_id;
END;

CREATE TRIGGER invoices_version_on_insert AFTER INSERT ON invoices
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER invoices_version_on_update AFTER UPDATE ON invoices
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id IN (OLD.client_id, NEW.client_id);
END;
CREATE TRIGGER invoices_version_on_delete AFTER DELETE ON invoices
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = OLD.client_id;
END;

CREATE TRIGGER sales_alerts_version_on_insert AFTER INSERT ON sales_alerts
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
END;
CREATE TRIGGER sales_alerts_version_on_update AFTER UPDATE ON sales_alerts
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id IN (OLD.client_id, NEW.client_id);
END;
CREATE TRIGGER sales_alerts_version_on_delete AFTER DELETE ON sales_alerts
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = OLD.client_id;
END;
