-- Webhook deliveries, written in the transaction of the event that causes
-- them and worked off by the delivery worker with retries.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         TEXT    NOT NULL,
    decision_id     TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease           INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER,
    UNIQUE (webhook, sequence)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
