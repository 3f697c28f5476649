-- Shadow runs: a policy version evaluated beside the active one on live decisions, the
-- champion alone deciding. A run is named by the audit record that started it; at most one
-- runs per policy at a time.
CREATE TABLE shadow_runs (
    started_sequence  BIGINT PRIMARY KEY NOT NULL,
    policy            TEXT NOT NULL,
    version           INTEGER NOT NULL,
    -- Exact decimal in (0, 1]: the share of decisions shadowed.
    sample_rate       TEXT NOT NULL,
    started_at        TIMESTAMP NOT NULL,
    started_by        TEXT NOT NULL,
    stopped_sequence  BIGINT,
    stopped_at        TIMESTAMP,
    stopped_by        TEXT,
    -- Decisions not compared: the shadow queue was full, or the snapshot could not be re-run.
    skipped           BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (policy, version) REFERENCES policy_versions (policy, version)
);
CREATE UNIQUE INDEX shadow_runs_one_per_policy ON shadow_runs (policy) WHERE stopped_sequence IS NULL;
CREATE INDEX shadow_runs_by_version ON shadow_runs (policy, version, started_sequence);

-- What the challenger gave on each shadowed decision, beside what was answered. Written by
-- the shadow thread of whichever server process made the decision.
CREATE TABLE shadow_results (
    run          BIGINT NOT NULL REFERENCES shadow_runs (started_sequence),
    sequence     BIGINT NOT NULL,
    decision_id  TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    -- The two sides differ (what the report counts as changed), for queries by hand.
    changed      BOOLEAN NOT NULL,
    -- TermsSummary JSON of each side.
    recorded     TEXT NOT NULL,
    challenger   TEXT NOT NULL,
    PRIMARY KEY (run, sequence)
);
