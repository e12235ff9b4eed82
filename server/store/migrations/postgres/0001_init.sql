-- The head of the hash chain. Every write transaction locks this one row
-- first, so sequences are assigned in commit order and stay gap-free (a
-- rolled-back transaction rolls its sequences back with it).
CREATE TABLE chain (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    sequence BIGINT NOT NULL,
    hash     TEXT   NOT NULL
);
INSERT INTO chain (id, sequence, hash)
VALUES (TRUE, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The event log: global, gap-free, hash-chained, append-only.
CREATE TABLE events (
    sequence    BIGINT PRIMARY KEY,
    decision_id TEXT   NOT NULL,
    type        TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    body        TEXT   NOT NULL, -- the event's canonical JSON, as hashed
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL
);
CREATE INDEX events_by_decision ON events (decision_id, sequence);

-- The projection: each decision's state after its latest event.
CREATE TABLE decisions (
    id            TEXT PRIMARY KEY,
    kind          TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    asked_by      TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    -- Durable timers, and the lease of the replica that claimed them.
    expires_at    BIGINT,
    fallback_at   BIGINT,
    timer_lease   BIGINT,
    body          TEXT   NOT NULL
);
CREATE INDEX decisions_by_status ON decisions (status, id);
CREATE INDEX decisions_expiring ON decisions (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX decisions_unacked ON decisions (fallback_at) WHERE fallback_at IS NOT NULL;

-- Idempotency keys of Ask and Answer, scoped to the calling principal.
CREATE TABLE requests (
    scope       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
