DROP INDEX clients_review_pending;
ALTER TABLE clients DROP COLUMN review_pending;
