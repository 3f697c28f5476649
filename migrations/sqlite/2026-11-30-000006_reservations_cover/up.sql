-- A client's reserved credit is summed on every credit decision: the index now carries the
-- amount, so the sum reads the index alone and never the table's rows.
DROP INDEX reservations_by_client;
CREATE INDEX reservations_by_client ON reservations (client_id, status, expires_at, amount_minor);
