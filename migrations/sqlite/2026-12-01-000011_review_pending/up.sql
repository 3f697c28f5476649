-- A client whose events are committed but whose limit review is not yet: a batch of events
-- commits its projection first and reviews its clients in a second, short transaction, so
-- that the policies run outside the write lock. The mark is set with the projection and
-- cleared by any review written on the client's current state; a crash between the two
-- transactions leaves it set, and the scheduled pass reviews marked clients.
ALTER TABLE clients ADD COLUMN review_pending BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX clients_review_pending ON clients (client_id) WHERE review_pending;
