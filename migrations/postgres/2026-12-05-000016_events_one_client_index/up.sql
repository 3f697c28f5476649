-- The log keeps one index by client. `client_events_by_type` (client, type, seq) served only
-- the type filter of GET /v1/clients/{id}/events, which `client_events_by_client` answers by
-- reading the client's events newest first and skipping other types; each event logged wrote
-- an entry into both, at the client's place in each: one page of the log's write an index.
DROP INDEX client_events_by_type;
