-- Operators pause a lane (<region>/<handler>): the relay parks that lane's tasks here instead of
-- publishing them, and resuming moves them back to the outbox. In Postgres so every engine
-- replica holds the same lanes.
CREATE TABLE paused_lanes (
  lane       text        PRIMARY KEY,
  reason     text,
  paused_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE held_tasks (
  task_key     text        PRIMARY KEY,            -- <taskId>:<attempt>, the task's Nats-Msg-Id
  lane         text        NOT NULL,
  message      jsonb       NOT NULL,               -- the outbox message, as it would have been published
  held_at      timestamptz NOT NULL DEFAULT now(),
  released_at  timestamptz                         -- set on resume; the deadline sweep counts the timeout from it
);
CREATE INDEX held_tasks_lane ON held_tasks (lane) WHERE released_at IS NULL;
