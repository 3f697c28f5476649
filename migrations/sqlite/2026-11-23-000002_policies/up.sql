-- Policies: named stages of a trigger's pipeline, each with immutable versions and
-- exactly one active version (policies.active_version).
CREATE TABLE policies (
    name            TEXT PRIMARY KEY NOT NULL,
    trigger_name    TEXT NOT NULL CHECK (trigger_name IN ('credit_request', 'client_event', 'both')),
    position        INTEGER NOT NULL,
    active_version  INTEGER,
    created_at      TIMESTAMP NOT NULL
);

CREATE TABLE policy_versions (
    policy       TEXT NOT NULL REFERENCES policies (name),
    version      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    description  TEXT NOT NULL,
    author       TEXT NOT NULL,
    tests        TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (policy, version)
);
CREATE INDEX policy_versions_sha ON policy_versions (sha256);

CREATE TABLE policy_activations (
    policy          TEXT NOT NULL REFERENCES policies (name),
    version         INTEGER NOT NULL,
    activated_by    TEXT NOT NULL,
    activated_at    TIMESTAMP NOT NULL,
    audit_sequence  BIGINT NOT NULL,
    PRIMARY KEY (policy, audit_sequence)
);

-- Bumped by every activation, in the same transaction: each decision reads it once and
-- reloads the active set when it moved, so an activation reaches every worker and every
-- server process before their next decision.
CREATE TABLE policy_generation (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO policy_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are immutable'); END;
CREATE TRIGGER policy_versions_no_delete BEFORE DELETE ON policy_versions
BEGIN SELECT RAISE(ABORT, 'policy versions are immutable'); END;
