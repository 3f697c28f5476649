DROP TABLE audit_head;
DROP TABLE audit_records;
DROP FUNCTION encours_refuse_change();
DROP TABLE clients;
