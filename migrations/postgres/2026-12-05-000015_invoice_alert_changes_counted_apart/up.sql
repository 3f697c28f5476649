-- SQLite only (invoice and alert changes counted in client_reserved, not on the client's row).
-- This empty step keeps the two migration lists the same versions.
SELECT 1;
