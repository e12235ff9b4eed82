-- The compact event log (format 2, server/store/codec.rs): events from
-- `since_sequence` on store only what they add (CREATED the request and the
-- resolved policy, later events their own payload) and are hashed over their
-- columns and body; earlier events keep their whole-event JSON and hash as
-- before, so the chain stays valid across the switch. The Rust step of this
-- migration rewrites the decision rows without their default-valued fields.
CREATE TABLE log_formats (
    format         INTEGER PRIMARY KEY,
    since_sequence BIGINT  NOT NULL
);
INSERT INTO log_formats (format, since_sequence)
SELECT 2, COALESCE(MAX(sequence), 0) + 1 FROM events;
