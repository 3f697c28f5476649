DROP TRIGGER sales_alerts_version ON sales_alerts;
DROP TRIGGER invoices_version ON invoices;
DROP TRIGGER reservations_version_on_update ON reservations;
DROP TRIGGER reservations_version_on_insert_delete ON reservations;
DROP FUNCTION client_rows_version_bump();
DROP TRIGGER clients_version_on_update ON clients;
DROP FUNCTION clients_version_bump();
ALTER TABLE clients DROP COLUMN version;
