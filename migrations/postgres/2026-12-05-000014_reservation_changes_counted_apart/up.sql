-- SQLite only (a reservation's change counted in client_reserved, not on the client's row).
-- PostgreSQL keeps the bump on the client's row, whose lock serialises a client's decisions;
-- this empty step keeps the two migration lists the same versions.
SELECT 1;
