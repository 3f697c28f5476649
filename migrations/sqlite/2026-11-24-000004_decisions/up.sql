-- Credit decisions, as answered. Never edited: a review's resolution is a new decision that
-- points to the original (`resolves`), and `review_resolutions` makes a second one impossible.
CREATE TABLE decisions (
    decision_id      TEXT PRIMARY KEY NOT NULL,
    request_id       TEXT NOT NULL UNIQUE,
    request_sha256   TEXT NOT NULL,
    client_id        TEXT NOT NULL REFERENCES clients (client_id),
    outcome          TEXT NOT NULL CHECK (outcome IN ('approved', 'conditional', 'review', 'declined')),
    channel          TEXT NOT NULL,
    approved_minor   BIGINT NOT NULL CHECK (approved_minor >= 0),
    decided_at       TIMESTAMP NOT NULL,
    resolves         TEXT REFERENCES decisions (decision_id),
    actor            TEXT NOT NULL,
    answer           TEXT NOT NULL,
    audit_sequence   BIGINT NOT NULL
);
CREATE INDEX decisions_newest ON decisions (decided_at DESC, decision_id DESC);
CREATE INDEX decisions_by_client ON decisions (client_id, decided_at DESC);
CREATE INDEX decisions_by_outcome ON decisions (outcome, decided_at DESC);

CREATE TABLE review_resolutions (
    review_id      TEXT PRIMARY KEY NOT NULL REFERENCES decisions (decision_id),
    resolution_id  TEXT NOT NULL REFERENCES decisions (decision_id),
    resolved_by    TEXT NOT NULL,
    resolved_at    TIMESTAMP NOT NULL
);

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are never edited'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are never edited'); END;
