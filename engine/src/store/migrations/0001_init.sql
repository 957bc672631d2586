-- FlowMonkey Mesh engine schema, version 1.
-- The execution row carries its step states as one jsonb document: one row to lock, read
-- and write per state change, which is what keeps write amplification low. Per-attempt task
-- rows are the audit trail (the seed's fm_jobs).

CREATE TABLE flows (
  flow_id     text        NOT NULL,
  version     integer     NOT NULL,
  label       text,
  definition  jsonb       NOT NULL,
  hash        text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, version)
);

CREATE TABLE executions (
  id            text        PRIMARY KEY,
  start_key     text        NOT NULL UNIQUE,
  flow_id       text        NOT NULL,
  flow_version  integer     NOT NULL,
  status        text        NOT NULL,
  input         jsonb,
  context       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  output        jsonb,
  error         jsonb,
  steps         jsonb       NOT NULL,
  tenant_id     text,
  region        text        NOT NULL,
  priority      text        NOT NULL,
  labels        jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz,
  FOREIGN KEY (flow_id, flow_version) REFERENCES flows (flow_id, version)
) WITH (fillfactor = 70);  -- room on each page for HOT updates: a step change rewrites the row, not its indexes
CREATE INDEX executions_flow_created ON executions (flow_id, created_at DESC, id DESC);
CREATE INDEX executions_status_created ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_created ON executions (created_at DESC, id DESC);

CREATE TABLE tasks (
  task_id       text        NOT NULL,
  attempt       integer     NOT NULL,
  execution_id  text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  step_id       text        NOT NULL,
  handler       text        NOT NULL,
  region        text        NOT NULL,
  status        text        NOT NULL,
  worker_id     text,
  dispatched_at timestamptz NOT NULL,
  started_at    timestamptz,
  completed_at  timestamptz,
  output        jsonb,
  error         jsonb,
  PRIMARY KEY (task_id, attempt)
) WITH (fillfactor = 80);  -- an attempt is inserted, then updated once with its outcome (HOT)
CREATE INDEX tasks_execution ON tasks (execution_id);

-- Messages committed with the state change that caused them; published after commit by the
-- process that committed them (claimed_until set at insert), or by the relay's sweep when that
-- process died (claim expired) or the row is due later (retries).
CREATE TABLE outbox (
  id             bigserial   PRIMARY KEY,
  messages       jsonb       NOT NULL,
  not_before     timestamptz NOT NULL DEFAULT now(),
  claimed_until  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (not_before);

CREATE TABLE rejections (
  id           bigserial   PRIMARY KEY,
  subject      text        NOT NULL,
  code         text        NOT NULL,
  reason       text        NOT NULL,
  excerpt      text,
  received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejections_received ON rejections (received_at DESC);
