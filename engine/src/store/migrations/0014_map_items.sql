-- Map steps: one row per item of a map step's run, written once when the step starts (the list
-- is evaluated then) and updated as its task moves. The execution row keeps only counters, so
-- an item's result rewrites one small row here, never a list as long as the map.
CREATE TABLE map_items (
  execution_id text        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  step_id      text        NOT NULL,
  -- A step retried by an operator maps again: a new run, its items' task ids apart from the old ones.
  run          integer     NOT NULL,
  idx          integer     NOT NULL,
  item         jsonb       NOT NULL,
  -- pending | dispatched | completed | failed
  status       text        NOT NULL DEFAULT 'pending',
  attempts     integer     NOT NULL DEFAULT 0,
  -- While dispatched: when the current attempt's timeout passes (the deadline sweep's clock).
  deadline_at  timestamptz,
  output       jsonb,
  error        jsonb,
  PRIMARY KEY (execution_id, step_id, run, idx)
);
-- The deadline sweep's scan: only items in flight.
CREATE INDEX map_items_in_flight ON map_items (deadline_at) WHERE status = 'dispatched';
