DROP TABLE audit_head;
DROP TABLE audit_records;
DROP TABLE clients;
