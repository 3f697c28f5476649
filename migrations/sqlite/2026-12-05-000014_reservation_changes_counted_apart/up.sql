-- A client's version, which the decision writer compares with a draft's, was bumped on the
-- client's row by every change of its reservations: each decision's reservation rewrote the
-- client's row, one more b-tree page at a random place in every decision's commit. On SQLite
-- the reservations' share of the version is now counted in `client_reserved.changes`, the
-- narrow row the same insert already updates for the running total: the version a decision
-- compares is `clients.version + client_reserved.changes` (see `clients::lock_version`), and
-- it moves on exactly the writes it moved on before. PostgreSQL keeps the bump on the row,
-- whose lock serialises a client's decisions there.
ALTER TABLE client_reserved ADD COLUMN changes BIGINT NOT NULL DEFAULT 0;

DROP TRIGGER reservations_version_on_insert;
DROP TRIGGER reservations_version_on_update;
DROP TRIGGER reservations_version_on_delete;

-- An insert or a delete: one upsert counts the change and the active contribution.
DROP TRIGGER reservations_reserved_on_insert;
CREATE TRIGGER reservations_reserved_on_insert AFTER INSERT ON reservations
BEGIN
    INSERT INTO client_reserved (client_id, active_minor, changes)
    VALUES (NEW.client_id, CASE WHEN NEW.status = 'active' THEN NEW.amount_minor ELSE 0 END, 1)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor,
                                          changes = changes + 1;
END;
DROP TRIGGER reservations_reserved_on_delete;
CREATE TRIGGER reservations_reserved_on_delete AFTER DELETE ON reservations
BEGIN
    INSERT INTO client_reserved (client_id, active_minor, changes)
    VALUES (OLD.client_id, CASE WHEN OLD.status = 'active' THEN -OLD.amount_minor ELSE 0 END, 1)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor,
                                          changes = changes + 1;
END;
-- An update: the running total keeps its own trigger (reservations_reserved_on_update); the
-- change is counted on every update but the expiry sweep's (the condition of the trigger it
-- replaces, migration 000010), for the client before and, when it moved, the one after.
CREATE TRIGGER reservations_changes_on_update AFTER UPDATE ON reservations
WHEN NOT (NEW.settled_at IS NOT NULL AND NEW.settled_at >= OLD.expires_at
          AND NEW.expires_at = OLD.expires_at AND NEW.amount_minor = OLD.amount_minor
          AND NEW.client_id = OLD.client_id)
BEGIN
    INSERT INTO client_reserved (client_id, changes) VALUES (NEW.client_id, 1)
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
    INSERT INTO client_reserved (client_id, changes)
    SELECT OLD.client_id, 1 WHERE OLD.client_id <> NEW.client_id
    ON CONFLICT (client_id) DO UPDATE SET changes = changes + 1;
END;
