import { periodMs, RetentionPeriod } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

/** Which ended executions one pass deletes: those on the engine's period, or one flow period's. */
export type RetentionClass = { kind: "default"; retentionMs: number } | { kind: "flow"; retentionMs: number };

/**
 * Deletes up to `limit` executions of one retention class that ended more than its period ago,
 * oldest first, in one statement: their usage is first added to `usage_rollups` (by tenant,
 * tier and the hour each task ended), then the rows go with their tasks (deleted here: no
 * foreign key ties a task to its execution, see migration 0020); their dead letters and wait
 * tokens go by ON DELETE CASCADE, their context blobs with the blob cleanup's next pass. Rows
 * another engine is deleting are skipped, not waited for. Each class walks its own partial
 * index, so executions kept longer by their flow are never re-read by the default pass.
 */
export async function deleteEndedExecutions(q: Queryable, cls: RetentionClass, limit: number): Promise<number> {
  const which =
    cls.kind === "default"
      ? "completed_at IS NOT NULL AND retain_ms IS NULL AND completed_at < now() - make_interval(secs => $1::bigint / 1000.0)"
      : "completed_at IS NOT NULL AND retain_ms IS NOT NULL AND retain_ms = $1::bigint AND completed_at < now() - make_interval(secs => $1::bigint / 1000.0)";
  const { rowCount } = await q.query(
    `WITH doomed AS (
       SELECT id, tenant_id FROM executions WHERE ${which} ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED),
     usage AS (
       SELECT coalesce(d.tenant_id, '') AS tenant_id, coalesce(t.tier, 'unknown') AS tier, date_trunc('hour', t.completed_at) AS hour,
              t.execution_id, coalesce(t.active_ms, 0) AS active_ms, coalesce(t.paused_ms, 0) AS paused_ms
         FROM doomed d JOIN tasks t ON t.execution_id = d.id
        WHERE t.completed_at IS NOT NULL),
     rolled AS (
       INSERT INTO usage_rollups AS r (tenant_id, tier, hour, executions, tasks, active_ms, paused_ms)
       SELECT tenant_id, CASE WHEN GROUPING(tier) = 1 THEN '' ELSE tier END, hour,
              count(DISTINCT execution_id), count(*), sum(active_ms), sum(paused_ms)
         FROM usage GROUP BY GROUPING SETS ((tenant_id, tier, hour), (tenant_id, hour))
       ON CONFLICT (tenant_id, tier, hour) DO UPDATE
          SET executions = r.executions + excluded.executions, tasks = r.tasks + excluded.tasks,
              active_ms = r.active_ms + excluded.active_ms, paused_ms = r.paused_ms + excluded.paused_ms),
     tasks_gone AS (
       DELETE FROM tasks t USING doomed d WHERE t.execution_id = d.id)
     DELETE FROM executions e USING doomed WHERE e.id = doomed.id`,
    [cls.retentionMs, limit],
  );
  return rowCount ?? 0;
}

/**
 * The periods flows set with `retention:` (distinct, in ms; "forever" left out: nothing to
 * delete). Read from the flow registry, which is small, rather than from the executions.
 */
export async function flowRetentionPeriods(q: Queryable): Promise<number[]> {
  const { rows } = await q.query<{ retention: unknown }>(
    "SELECT DISTINCT definition->'retention' AS retention FROM flows WHERE definition ? 'retention'",
  );
  const periods = new Set<number>();
  for (const { retention } of rows) {
    const parsed = RetentionPeriod.safeParse(retention);
    if (parsed.success && periodMs(parsed.data) > 0) periods.add(periodMs(parsed.data));
  }
  return [...periods];
}

/** Rejections and outbox dead letters older than `retentionMs` (records about input, not executions). */
export async function deleteOldRecords(q: Queryable, retentionMs: number): Promise<number> {
  const cutoff = "now() - make_interval(secs => $1::bigint / 1000.0)";
  const rejections = await q.query(`DELETE FROM rejections WHERE received_at < ${cutoff}`, [retentionMs]);
  const deadLetters = await q.query(`DELETE FROM outbox_dead_letters WHERE dead_at < ${cutoff}`, [retentionMs]);
  return (rejections.rowCount ?? 0) + (deadLetters.rowCount ?? 0);
}
