import type { Failure } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

/**
 * Where an attempt really went, when routing chose another region than the one it was
 * dispatched for (failover, least-busy, residency): executions.get shows it in the history.
 */
export async function recordAttemptRegion(q: Queryable, taskId: string, attempt: number, region: string): Promise<void> {
  await q.query("UPDATE tasks SET region = $3 WHERE task_id = $1 AND attempt = $2 AND status = 'dispatched'", [taskId, attempt, region]);
}

/**
 * Why an attempt is not on its way yet (no allowed region reachable, an unknown residency rule, a
 * missing capability): visible as the attempt's error while its status is still `dispatched`.
 * `undefined` clears it once the task is published.
 */
export async function recordAttemptHeld(q: Queryable, taskId: string, attempt: number, why: Failure | undefined): Promise<void> {
  await q.query("UPDATE tasks SET error = $3::jsonb WHERE task_id = $1 AND attempt = $2 AND status = 'dispatched'", [
    taskId,
    attempt,
    why === undefined ? null : JSON.stringify(why),
  ]);
}
