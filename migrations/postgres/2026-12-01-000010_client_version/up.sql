-- A client's version: bumped by every write that changes what a credit decision reads of the
-- client (its row, its reservations, invoices and sales alerts), so the decision writer checks
-- that the state a draft was made on still holds with one comparison instead of reading the
-- client again. Triggers do the bumping, so no write path can forget it. Every path that
-- writes those rows holds the client's row lock already (decision writer, review resolution,
-- event batches, rebuilds, limit reviews), so the bump takes no lock in a new order; the
-- expiry sweep, which locks no client, does not bump (see below).
ALTER TABLE clients ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- The row itself (profile, ledger, limit reviews); a write that sets the version itself is
-- one of the triggers below.
CREATE FUNCTION clients_version_bump() RETURNS trigger AS $$
BEGIN
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER clients_version_on_update BEFORE UPDATE ON clients
FOR EACH ROW EXECUTE FUNCTION clients_version_bump();

-- A row of a client's reservations, invoices or sales alerts changed.
CREATE FUNCTION client_rows_version_bump() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE clients SET version = version + 1 WHERE client_id = OLD.client_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.client_id <> OLD.client_id) THEN
        UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER reservations_version_on_insert_delete AFTER INSERT OR DELETE ON reservations
FOR EACH ROW EXECUTE FUNCTION client_rows_version_bump();
-- Any change of a reservation may change the reserved credit but one: the expiry sweep
-- marking a reservation that already stopped counting at its `expires_at` (settled at or after
-- it; amount, expiry and client unchanged). A draft's own validity ends at the first expiry it
-- counted (see the decision writer), and the sweep holds no client lock on PostgreSQL, so it
-- must not take one through this trigger.
CREATE TRIGGER reservations_version_on_update AFTER UPDATE ON reservations
FOR EACH ROW
WHEN (NOT (NEW.settled_at IS NOT NULL AND NEW.settled_at >= OLD.expires_at
          AND NEW.expires_at = OLD.expires_at AND NEW.amount_minor = OLD.amount_minor
          AND NEW.client_id = OLD.client_id))
EXECUTE FUNCTION client_rows_version_bump();

CREATE TRIGGER invoices_version AFTER INSERT OR UPDATE OR DELETE ON invoices
FOR EACH ROW EXECUTE FUNCTION client_rows_version_bump();
CREATE TRIGGER sales_alerts_version AFTER INSERT OR UPDATE OR DELETE ON sales_alerts
FOR EACH ROW EXECUTE FUNCTION client_rows_version_bump();
