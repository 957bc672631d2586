-- The relay's memory of a row it could not publish: how often it tried and why it failed,
-- so a message the server refuses is dead-lettered after a bounded number of tries instead
-- of being republished (with every message beside it) forever.
ALTER TABLE outbox ADD COLUMN tries int NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error text;

-- Messages the relay gave up on, with the reason: a task's attempt is failed in the engine
-- (PAYLOAD_TOO_LARGE or PUBLISH_FAILED), events and dead-letter notices are only recorded.
CREATE TABLE outbox_dead_letters (
  id            bigserial   PRIMARY KEY,
  subject       text        NOT NULL,
  msg_id        text,
  execution_id  text,
  code          text        NOT NULL,
  reason        text        NOT NULL,
  bytes         int         NOT NULL,
  tries         int         NOT NULL,
  -- The message as it was queued, when it is small enough to keep (else only its size).
  body          jsonb,
  dead_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_dead_letters_execution ON outbox_dead_letters (execution_id);
