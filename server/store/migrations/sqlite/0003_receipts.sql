-- Receipt bodies, written with the event that closes each decision. The
-- signature is computed when a receipt is served, so keys can rotate.
CREATE TABLE receipts (
    decision_id TEXT PRIMARY KEY,
    body        TEXT NOT NULL
);
