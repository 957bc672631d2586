-- Dead letters: task attempts the mesh will not try again on its own (deliveries or attempts
-- exhausted). The same entry is published on fm.dlq.<region>.<handler> (stream FM_DLQ) for
-- anyone watching; this table is what dlq.list pages through and dlq.replay marks.
CREATE TABLE dead_tasks (
  id            text        PRIMARY KEY,               -- <taskId>:<attempt>
  execution_id  text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  step_id       text        NOT NULL,
  attempt       integer     NOT NULL,
  region        text        NOT NULL,
  handler       text        NOT NULL,
  reason        text        NOT NULL,
  last_error    jsonb,
  deliveries    integer     NOT NULL,
  task          jsonb       NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  replayed_at   timestamptz
);
CREATE INDEX dead_tasks_open ON dead_tasks (created_at DESC) WHERE replayed_at IS NULL;
CREATE INDEX dead_tasks_execution ON dead_tasks (execution_id);
