-- A client's reserved credit is read on every credit decision. Summed when read, its cost grew
-- with the client's active reservations (a hundred and more in the load benchmark); kept here as
-- a running total by triggers, the read subtracts only the active reservations already past
-- their expiry that the sweep has not marked yet (a short index range), see `reserved_minor`.
-- `active_minor` sums every reservation with status 'active', expired or not: time alone
-- never writes.
-- A table of its own, not a column of `clients`: an update of `clients` bumps the client's
-- version (`clients_version_on_update`), and the expiry sweep must not (migration 000010).
-- WITHOUT ROWID: the row lives in its key's b-tree, one lookup where a rowid table takes two.
CREATE TABLE client_reserved (
    client_id     TEXT PRIMARY KEY NOT NULL REFERENCES clients (client_id),
    active_minor  BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO client_reserved (client_id, active_minor)
SELECT clients.client_id, COALESCE(SUM(reservations.amount_minor), 0)
FROM clients
LEFT JOIN reservations
    ON reservations.client_id = clients.client_id AND reservations.status = 'active'
GROUP BY clients.client_id;

-- Each trigger adds a change of contribution to the client's row, making the row when the
-- client has none yet (clients made after this migration).
CREATE TRIGGER reservations_reserved_on_insert AFTER INSERT ON reservations
WHEN NEW.status = 'active'
BEGIN
    INSERT INTO client_reserved (client_id, active_minor) VALUES (NEW.client_id, NEW.amount_minor)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
END;
-- Only when the contribution changes: the reservation starts or stops being active, or an
-- active one changes amount or client.
CREATE TRIGGER reservations_reserved_on_update
AFTER UPDATE OF status, amount_minor, client_id ON reservations
WHEN (OLD.status = 'active') <> (NEW.status = 'active')
     OR (NEW.status = 'active'
         AND (NEW.amount_minor <> OLD.amount_minor OR NEW.client_id <> OLD.client_id))
BEGIN
    -- `WHERE` on both: an upsert's `SELECT` needs one (SQLite's parser), and each side counts
    -- only when active.
    INSERT INTO client_reserved (client_id, active_minor)
    SELECT OLD.client_id, -OLD.amount_minor WHERE OLD.status = 'active'
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
    INSERT INTO client_reserved (client_id, active_minor)
    SELECT NEW.client_id, NEW.amount_minor WHERE NEW.status = 'active'
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
END;
CREATE TRIGGER reservations_reserved_on_delete AFTER DELETE ON reservations
WHEN OLD.status = 'active'
BEGIN
    INSERT INTO client_reserved (client_id, active_minor) VALUES (OLD.client_id, -OLD.amount_minor)
    ON CONFLICT (client_id) DO UPDATE SET active_minor = active_minor + excluded.active_minor;
END;
