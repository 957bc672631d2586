import type { Db } from "./db.js";
import type { OutboxMessage } from "./outbox.js";

export interface PausedLaneRow {
  lane: string;
  reason?: string;
  pausedAt: string;
  /** Tasks parked while the lane is paused. */
  held: number;
}

export async function listPausedLanes(db: Db): Promise<PausedLaneRow[]> {
  const { rows } = await db.query<{ lane: string; reason: string | null; paused_at: Date | string; held: number }>(
    `SELECT p.lane, p.reason, p.paused_at,
            (SELECT count(*)::int FROM held_tasks h WHERE h.lane = p.lane AND h.released_at IS NULL) AS held
       FROM paused_lanes p ORDER BY p.lane`,
  );
  return rows.map((r) => ({ lane: r.lane, ...(r.reason ? { reason: r.reason } : {}), pausedAt: new Date(r.paused_at).toISOString(), held: r.held }));
}

/** Pauses a lane; pausing a paused lane keeps its first time and reason. */
export async function pauseLane(db: Db, lane: string, reason: string | undefined): Promise<void> {
  await db.query(`INSERT INTO paused_lanes (lane, reason) VALUES ($1, $2) ON CONFLICT (lane) DO NOTHING`, [lane, reason ?? null]);
}

/**
 * Resumes a lane: its parked tasks go back to the outbox, due now, in the order they were
 * parked. The DELETE waits for any hold in progress (which holds the lane row FOR SHARE), so
 * a task parked concurrently is either released here or was never parked.
 */
export async function resumeLane(db: Db, lane: string): Promise<{ wasPaused: boolean; released: number }> {
  return db.tx(async (q) => {
    const deleted = await q.query(`DELETE FROM paused_lanes WHERE lane = $1 RETURNING lane`, [lane]);
    const { rows } = await q.query<{ n: number }>(
      `WITH released AS (
         UPDATE held_tasks SET released_at = now() WHERE lane = $1 AND released_at IS NULL RETURNING message, held_at, task_key
       ), queued AS (
         INSERT INTO outbox (messages, not_before)
         SELECT jsonb_build_array(message), now() FROM released ORDER BY held_at, task_key RETURNING 1
       )
       SELECT count(*)::int AS n FROM queued`,
      [lane],
    );
    // Released entries older than a day no longer matter to any deadline.
    await q.query(`DELETE FROM held_tasks WHERE released_at < now() - interval '1 day'`);
    return { wasPaused: deleted.rows.length > 0, released: rows[0]?.n ?? 0 };
  });
}

/**
 * Parks the task messages whose lane is still paused (checked under a share lock on the lane
 * row, see resumeLane) and returns the keys it parked; the caller publishes the others.
 */
export async function holdTasks(db: Db, tasks: Array<{ key: string; lane: string; message: OutboxMessage }>): Promise<Set<string>> {
  if (tasks.length === 0) return new Set();
  return db.tx(async (q) => {
    const lanes = [...new Set(tasks.map((t) => t.lane))];
    const { rows } = await q.query<{ lane: string }>(`SELECT lane FROM paused_lanes WHERE lane = ANY($1::text[]) FOR SHARE`, [lanes]);
    const paused = new Set(rows.map((r) => r.lane));
    const held = tasks.filter((t) => paused.has(t.lane));
    if (held.length > 0) {
      await q.query(
        `INSERT INTO held_tasks (task_key, lane, message)
         SELECT x.key, x.lane, x.message FROM jsonb_to_recordset($1::jsonb) AS x(key text, lane text, message jsonb)
         ON CONFLICT (task_key) DO UPDATE SET lane = EXCLUDED.lane, message = EXCLUDED.message, held_at = now(), released_at = NULL`,
        [JSON.stringify(held.map((t) => ({ key: t.key, lane: t.lane, message: t.message })))],
      );
    }
    return new Set(held.map((t) => t.key));
  });
}
