CREATE INDEX client_events_by_type ON client_events (client_id, event_type, seq);
