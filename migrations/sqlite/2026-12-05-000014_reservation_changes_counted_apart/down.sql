DROP TRIGGER reservations_changes_on_update;
DROP TRIGGER reservations_reserved_on_delete;
CREATE TRIGGER reservations_reserved_on_delete AFTER DELETE ON reservations
WHEN OLD.status = 'active'
BEGIN
    INSERT INTO client_reserved (client_id, active_minor) VALUES (OLD.client_id, -OLD.amount_minor)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
END;
DROP TRIGGER reservations_reserved_on_insert;
CREATE TRIGGER reservations_reserved_on_insert AFTER INSERT ON reservations
WHEN NEW.status = 'active'
BEGIN
    INSERT INTO client_reserved (client_id, active_minor) VALUES (NEW.client_id, NEW.amount_minor)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
END;
-- The counted changes go back onto the clients' rows.
UPDATE clients SET version = version + (
    SELECT changes FROM client_reserved WHERE client_reserved.client_id = clients.client_id)
WHERE client_id IN (SELECT client_id FROM client_reserved WHERE changes <> 0);
CREATE TRIGGER reservations_version_on_insert AFTER INSERT ON reservations
BEGIN
    UPDATE clients SET version = version + 1 WHERE client_id = NEW.client_id;
END;
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
ALTER TABLE client_reserved DROP COLUMN changes;
