-- A client's decisions are listed through the audit log's per-client index (`audit_by_client`):
-- every decision has one record of kind `decision` or `decision.resolution`, with the client's
-- id and the subject `decision:{decision_id}`. The decisions table's own index by client put
-- one more b-tree page at a random place into every decision's commit (4.5 KB written a
-- decision and about 7 % of the decision benchmark's rate on SQLite, docs/benchmarks.md).
DROP INDEX decisions_by_client;
