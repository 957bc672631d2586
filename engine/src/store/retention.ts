import type { Queryable } from "./db.js";

/**
 * Deletes up to `limit` executions that ended more than `retentionMs` ago, oldest first; their
 * tasks, dead letters and wait tokens go with them (ON DELETE CASCADE), their context blobs with
 * the blob cleanup's next pass (it deletes blobs of executions that no longer exist). Rows
 * another engine is deleting are skipped, not waited for.
 */
export async function deleteEndedExecutions(q: Queryable, retentionMs: number, limit: number): Promise<number> {
  const { rowCount } = await q.query(
    `WITH doomed AS (
       SELECT id FROM executions
        WHERE completed_at IS NOT NULL AND completed_at < now() - make_interval(secs => $1::bigint / 1000.0)
        ORDER BY completed_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
     DELETE FROM executions e USING doomed WHERE e.id = doomed.id`,
    [retentionMs, limit],
  );
  return rowCount ?? 0;
}

/** Rejections and outbox dead letters older than `retentionMs` (records about input, not executions). */
export async function deleteOldRecords(q: Queryable, retentionMs: number): Promise<number> {
  const cutoff = "now() - make_interval(secs => $1::bigint / 1000.0)";
  const rejections = await q.query(`DELETE FROM rejections WHERE received_at < ${cutoff}`, [retentionMs]);
  const deadLetters = await q.query(`DELETE FROM outbox_dead_letters WHERE dead_at < ${cutoff}`, [retentionMs]);
  return (rejections.rowCount ?? 0) + (deadLetters.rowCount ?? 0);
}
