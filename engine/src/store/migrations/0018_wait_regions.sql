-- The region a waiting step parked in (the region of the worker whose `wait` result parked it,
-- as its results subject says). An event a region's worker emitted (`fm.events.~<region>.<name>`)
-- may resume only waits of that region: a worker must not resume other regions' waits. NULL: a
-- wait only trusted publishers' events (`fm.events.<name>`) may resume.
ALTER TABLE wait_tokens ADD COLUMN region text;

-- Waits parked before this migration: the region of the attempt that parked them.
UPDATE wait_tokens w
   SET region = t.region
  FROM tasks t
 WHERE t.task_id = w.execution_id || '/' || w.step_id AND t.attempt = w.attempt;
