-- The changes go back to bumping the clients' rows (the counts already made stay counted in
-- client_reserved.changes, which the version still adds).
DROP TRIGGER invoices_changes_on_insert;
DROP TRIGGER invoices_changes_on_update;
DROP TRIGGER invoices_changes_on_delete;
DROP TRIGGER sales_alerts_changes_on_insert;
DROP TRIGGER sales_alerts_changes_on_update;
DROP TRIGGER sales_alerts_changes_on_delete;

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
