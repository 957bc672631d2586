-- Waiting steps and usage.
--
-- A waiting step holds no worker and no memory in the engine: what resumes it is a row here,
-- found by its token (fm.api.resume), by event name (FM_EVENTS) or by time (waitUntil). The
-- row goes when the step resumes or its execution ends.
CREATE TABLE wait_tokens (
  token         text        PRIMARY KEY,
  execution_id  text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  step_id       text        NOT NULL,
  -- The attempt that parked: a resume decided on an older reading of this row (a timer racing a
  -- resume request) must not resume a later wait of the same step that reused the token.
  attempt       integer     NOT NULL,
  tenant_id     text,
  event_name    text,
  event_filter  text,
  wait_until    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wait_tokens_event ON wait_tokens (event_name) WHERE event_name IS NOT NULL;
CREATE INDEX wait_tokens_until ON wait_tokens (wait_until) WHERE wait_until IS NOT NULL;
CREATE INDEX wait_tokens_execution ON wait_tokens (execution_id);

-- Usage per attempt: the handler's own run time (active), the time its step then waited
-- (paused, not billed as compute) and the size class of the pool that ran it.
ALTER TABLE tasks ADD COLUMN active_ms integer;
ALTER TABLE tasks ADD COLUMN paused_ms integer;
ALTER TABLE tasks ADD COLUMN tier text;
CREATE INDEX tasks_completed ON tasks (completed_at) WHERE completed_at IS NOT NULL;

-- The W3C traceparent of the span that started an execution: its dispatches (and so the
-- workers' runs and the results) join that trace.
ALTER TABLE executions ADD COLUMN traceparent text;

-- Blobs of offloaded contexts (fm_blobs, context/<executionId>/...), recorded in the
-- transaction that first referenced them, so that a sweep can delete an execution's blobs
-- once it has ended (the Object Store has no TTL or prefix delete of its own).
CREATE TABLE context_blobs (
  execution_id  text NOT NULL,
  name          text NOT NULL,
  PRIMARY KEY (execution_id, name)
);
