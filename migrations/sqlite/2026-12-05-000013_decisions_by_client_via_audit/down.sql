CREATE INDEX decisions_by_client ON decisions (client_id, decided_at DESC);
