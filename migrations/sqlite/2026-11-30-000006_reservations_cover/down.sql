DROP INDEX reservations_by_client;
CREATE INDEX reservations_by_client ON reservations (client_id, status, expires_at);
