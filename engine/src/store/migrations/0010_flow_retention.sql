-- Per-flow retention: an execution started from a flow version with `retention:` carries its
-- period; NULL means the engine's FM_RETENTION. Never updated, so it does not cost HOT updates.
ALTER TABLE executions ADD COLUMN retain_ms bigint;
-- The sweep walks each period's ended executions oldest first, by completed_at.
DROP INDEX executions_completed;
CREATE INDEX executions_completed ON executions (completed_at) WHERE completed_at IS NOT NULL AND retain_ms IS NULL;
CREATE INDEX executions_completed_retained ON executions (retain_ms, completed_at) WHERE completed_at IS NOT NULL AND retain_ms IS NOT NULL;

-- Usage of forgotten executions, rolled up by the hour their tasks ended before they are
-- deleted, so usage totals per tenant outlive the retention period. tenant_id '' is "no
-- tenant"; tier '' is the tenant's total (executions do not add up over tiers).
CREATE TABLE usage_rollups (
  tenant_id   text        NOT NULL,
  tier        text        NOT NULL,
  hour        timestamptz NOT NULL,
  executions  bigint      NOT NULL,
  tasks       bigint      NOT NULL,
  active_ms   bigint      NOT NULL,
  paused_ms   bigint      NOT NULL,
  PRIMARY KEY (tenant_id, tier, hour)
);
