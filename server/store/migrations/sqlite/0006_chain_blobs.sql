-- The hash chain in half the bytes: each event's hash as its 32 raw bytes
-- (BLOB) instead of 64 hex characters, and no `prev_hash` column (it only
-- repeated the previous event's hash; readers take it from there). The
-- Rust step before this SQL refuses a log whose stored links disagree, so
-- the rebuild never erases evidence of tampering. The per-decision index
-- holds the id alone: its entries end with the rowid, which is `sequence`.
CREATE TABLE events_v6 (
    sequence    INTEGER PRIMARY KEY,
    decision_id TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO events_v6 (sequence, decision_id, type, at, body, hash)
SELECT sequence, decision_id, type, at, body, unhex(hash) FROM events ORDER BY sequence;
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE INDEX events_by_decision ON events (decision_id);
