-- A map step over a sub-flow: each item's attempt starts a child, whose end concludes that
-- item's task (`<executionId>/<stepId>#<run>.<index>`), not the step's. NULL: the step's own task.
ALTER TABLE executions ADD COLUMN parent_task_id text;
