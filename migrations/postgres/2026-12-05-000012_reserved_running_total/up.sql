-- SQLite only (a running total of each client's active reservations, kept by triggers).
-- PostgreSQL keeps summing a client's reservations when read; this empty step keeps the two
-- migration lists the same versions.
SELECT 1;
