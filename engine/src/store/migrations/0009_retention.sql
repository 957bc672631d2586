-- Retention: the sweep deletes ended executions oldest first, by completed_at. Partial, so an
-- update that leaves completed_at NULL (every transition of a running execution) stays HOT.
CREATE INDEX executions_completed ON executions (completed_at) WHERE completed_at IS NOT NULL;
-- Rejections and undeliverable outbox messages are forgotten after the same period.
CREATE INDEX IF NOT EXISTS outbox_dead_letters_dead_at ON outbox_dead_letters (dead_at);
