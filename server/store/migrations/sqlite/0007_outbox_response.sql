-- What a delivery's receiver answered, when witness needs it later: the
-- Slack message `ts` of a decision's post, which its later events
-- `chat.update`. Written in the same UPDATE that marks the row delivered,
-- so a crash never leaves a posted message without its ts. The index finds
-- one decision's rows of one destination (its thread).
ALTER TABLE outbox ADD COLUMN response TEXT;
CREATE INDEX outbox_thread ON outbox (decision_id, webhook);
