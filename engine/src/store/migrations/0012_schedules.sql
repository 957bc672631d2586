-- Schedules: starts of a flow on a timer (engine/src/schedules). An engine claims a due row
-- for a while (claimed_until, taken with FOR UPDATE SKIP LOCKED), starts the tick's execution
-- under the start key `schedule:<id>:<tick time>` (so a tick taken again after a crash starts
-- nothing twice), then moves next_fire_at on and drops its claim.
CREATE TABLE schedules (
  schedule_id   text        PRIMARY KEY,
  flow_id       text        NOT NULL,
  -- `api` (put by a client) or `flow` (declared in its flow file, replaced when it is pushed).
  source        text        NOT NULL,
  cron          text,
  every_ms      bigint,
  timezone      text,
  input         jsonb,
  tenant_id     text,
  overlap       text        NOT NULL,
  missed        text        NOT NULL,
  paused        boolean     NOT NULL DEFAULT false,
  -- everyMs schedules count their period from here.
  anchor_at     timestamptz NOT NULL DEFAULT now(),
  next_fire_at  timestamptz,
  claimed_until timestamptz,
  last_tick     jsonb,
  last_execution_id text,
  ticks         bigint      NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused AND next_fire_at IS NOT NULL;
CREATE INDEX schedules_flow ON schedules (flow_id);
