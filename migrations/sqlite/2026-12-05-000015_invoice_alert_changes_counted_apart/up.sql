-- Every invoice row an event batch writes bumped its client's version on the client's row: one
-- rewrite of that wide row (some 30 columns, the risk factors' JSON among them) per invoice, a
-- few thousand in a group of batches, although the batch's review rewrites each client's row
-- once anyway. As migration 000014 did for reservations, on SQLite the changes of a client's
-- invoices and sales alerts are now counted in `client_reserved.changes`, the narrow row beside
-- the client's: the version a decision compares is `clients.version + client_reserved.changes`
-- (see `clients::lock_version`), and it still moves on every write to these tables, whatever
-- writes them. PostgreSQL keeps the bump on the row.
DROP TRIGGER invoices_version_on_insert;
DROP TRIGGER invoices_version_on_update;
DROP TRIGGER invoices_version_on_delete;
DROP TRIGGER sales_alerts_version_on_insert;
DROP TRIGGER sales_alerts_version_on_update;
DROP TRIGGER sales_alerts_version_on_delete;

CREATE TRIGGER invoices_changes_on_insert AFTER INSERT ON invoices
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (NEW.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
CREATE TRIGGER invoices_changes_on_update AFTER UPDATE ON invoices
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (NEW.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
    INSERT INTO client_reserved (client_id, changes)
    SELECT OLD.client_id, 1 WHERE OLD.client_id <> NEW.client_id
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
CREATE TRIGGER invoices_changes_on_delete AFTER DELETE ON invoices
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (OLD.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;

CREATE TRIGGER sales_alerts_changes_on_insert AFTER INSERT ON sales_alerts
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (NEW.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
CREATE TRIGGER sales_alerts_changes_on_update AFTER UPDATE ON sales_alerts
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (NEW.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
    INSERT INTO client_reserved (client_id, changes)
    SELECT OLD.client_id, 1 WHERE OLD.client_id <> NEW.client_id
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
CREATE TRIGGER sales_alerts_changes_on_delete AFTER DELETE ON sales_alerts
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (OLD.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
