-- Sub-flows: a child execution knows the step that started it (and how deep it is), so its
-- end concludes that step, and cancelling a parent finds its children.
ALTER TABLE executions ADD COLUMN parent_execution_id text;
ALTER TABLE executions ADD COLUMN parent_step_id text;
ALTER TABLE executions ADD COLUMN parent_attempt integer;
ALTER TABLE executions ADD COLUMN depth integer NOT NULL DEFAULT 0;
CREATE INDEX executions_parent ON executions (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
