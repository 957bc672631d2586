-- Fairness between tenants: a tenant's tasks in flight per lane (<region>/<handler>) are capped,
-- and what is over the cap waits here, in order, instead of queueing in JetStream ahead of
-- other tenants' tasks. Executions without a tenant are not counted.
CREATE TABLE tenant_limits (
  tenant_id      text    PRIMARY KEY,            -- '*' is the default for every tenant
  max_in_flight  integer NOT NULL CHECK (max_in_flight >= 0)  -- 0: no cap
);

CREATE TABLE tenant_lanes (
  tenant_id  text    NOT NULL,
  lane       text    NOT NULL,
  in_flight  integer NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, lane)
);

CREATE TABLE tenant_queue (
  id            bigserial   PRIMARY KEY,
  tenant_id     text        NOT NULL,
  lane          text        NOT NULL,
  task_key      text        NOT NULL UNIQUE,    -- <taskId>:<attempt>
  execution_id  text        NOT NULL,
  messages      jsonb       NOT NULL,
  not_before    timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_queue_lane ON tenant_queue (tenant_id, lane, id);

-- When a queued task was finally published: its attempt's deadline counts from then, not from
-- the dispatch that queued it (the deadline sweep reads this). Removed when the attempt settles.
CREATE TABLE tenant_admissions (
  task_key     text        PRIMARY KEY,
  admitted_at  timestamptz NOT NULL DEFAULT now()
);
