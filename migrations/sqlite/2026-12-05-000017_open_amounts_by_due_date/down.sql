CREATE INDEX invoices_open_by_due ON invoices (client_id, open_minor, due_on);
ALTER TABLE clients DROP COLUMN open_dues;
