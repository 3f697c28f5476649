-- Regression cases captured from logged decisions: the recorded input and what was decided,
-- re-run with every new version of a policy the decision involved.
CREATE TABLE captured_cases (
    id              TEXT PRIMARY KEY NOT NULL,
    sequence        BIGINT NOT NULL UNIQUE,
    decision_id     TEXT NOT NULL,
    policies        TEXT NOT NULL,
    expected        TEXT NOT NULL,
    captured_by     TEXT NOT NULL,
    captured_at     TIMESTAMP NOT NULL,
    audit_sequence  BIGINT NOT NULL
);

-- The captured cases a policy version knowingly changes, as its submission listed them.
CREATE TABLE captured_case_supersessions (
    policy   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    case_id  TEXT NOT NULL REFERENCES captured_cases (id),
    PRIMARY KEY (policy, version, case_id)
);
