-- The event log: global, gap-free, hash-chained, append-only.
CREATE TABLE events (
    sequence    INTEGER PRIMARY KEY,
    decision_id TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT    NOT NULL, -- the event's canonical JSON, as hashed
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX events_by_decision ON events (decision_id, sequence);

-- The projection: each decision's state after its latest event.
CREATE TABLE decisions (
    id            TEXT PRIMARY KEY,
    kind          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    asked_by      TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    -- Durable timers: when an open decision expires, and when its ack-window
    -- fallback is due (NULL once it cannot fire any more).
    expires_at    INTEGER,
    fallback_at   INTEGER,
    body          TEXT    NOT NULL
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
