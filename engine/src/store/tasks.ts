import type { AttemptView, Failure } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

/** One attempt of one step, as dispatched. */
export interface TaskAttemptRow {
  taskId: string;
  attempt: number;
  executionId: string;
  stepId: string;
  handler: string;
  region: string;
  dispatchedAt: string;
}

/** What came back for one attempt. `ignored` marks a duplicate or late result. */
export interface TaskOutcomeRow {
  taskId: string;
  attempt: number;
  status: "completed" | "failed" | "waiting" | "ignored" | "cancelled";
  workerId?: string;
  startedAt?: string;
  completedAt?: string;
  output?: unknown;
  error?: Failure;
  /** The handler's run time as its worker measured it. */
  activeMs?: number;
  tier?: string;
}

/** New attempts from a jsonb array parameter ($n); an attempt seen before is left as it is. */
export const insertTaskAttemptsSql = (param: string) => `
  INSERT INTO tasks (task_id, attempt, execution_id, step_id, handler, region, status, dispatched_at)
  SELECT x."taskId", x.attempt, x."executionId", x."stepId", x.handler, x.region, 'dispatched', x."dispatchedAt"
    FROM jsonb_to_recordset(${param}::jsonb) AS x("taskId" text, attempt int, "executionId" text, "stepId" text,
         handler text, region text, "dispatchedAt" timestamptz)
  ON CONFLICT (task_id, attempt) DO NOTHING`;

/**
 * Outcomes from a jsonb array parameter ($n). Only an attempt still marked dispatched takes
 * one; callers leave `ignored` outcomes (duplicates, late results) out of the parameter.
 */
export const recordTaskOutcomesSql = (param: string) => `
  UPDATE tasks t
     SET status = x.status, worker_id = coalesce(x."workerId", t.worker_id),
         started_at = coalesce(x."startedAt", t.started_at), completed_at = coalesce(x."completedAt", t.completed_at),
         output = x.output, error = x.error, active_ms = x."activeMs", tier = x.tier
    FROM jsonb_to_recordset(${param}::jsonb) AS x("taskId" text, attempt int, status text, "workerId" text,
         "startedAt" timestamptz, "completedAt" timestamptz, output jsonb, error jsonb, "activeMs" int, tier text)
   WHERE t.task_id = x."taskId" AND t.attempt = x.attempt AND t.status = 'dispatched'
     -- An index probe per row however many rows the planner guesses (see updateExecutionsSql).
     AND t.task_id = ANY (ARRAY(SELECT r ->> 'taskId' FROM jsonb_array_elements(${param}::jsonb) AS r))`;

/** How long attempts that ended in a wait were paused, set when their step resumes. */
export const recordTaskPausesSql = (param: string) => `
  UPDATE tasks t SET paused_ms = x."pausedMs"
    FROM jsonb_to_recordset(${param}::jsonb) AS x("taskId" text, attempt int, "pausedMs" int)
   WHERE t.task_id = x."taskId" AND t.attempt = x.attempt
     AND t.task_id = ANY (ARRAY(SELECT r ->> 'taskId' FROM jsonb_array_elements(${param}::jsonb) AS r))`;

/** Every attempt of one execution's steps (not of map items), per step, oldest first (for executions.get). */
export async function attemptsOf(q: Queryable, executionId: string): Promise<Map<string, AttemptView[]>> {
  const { rows } = await q.query<{
    step_id: string;
    attempt: number;
    status: string;
    region: string;
    dispatched_at: Date | string;
    worker_id: string | null;
    started_at: Date | string | null;
    completed_at: Date | string | null;
    error: Failure | null;
  }>(
    `SELECT step_id, attempt, status, region, dispatched_at, worker_id, started_at, completed_at, error
       FROM tasks WHERE execution_id = $1
        -- A map step's items are not its attempts (there may be thousands): the step shows their counts.
        AND task_id = execution_id || '/' || step_id
      ORDER BY step_id, attempt`,
    [executionId],
  );
  const iso = (at: Date | string) => new Date(at).toISOString();
  const byStep = new Map<string, AttemptView[]>();
  for (const r of rows) {
    let list = byStep.get(r.step_id);
    if (!list) byStep.set(r.step_id, (list = []));
    list.push({
      attempt: r.attempt,
      status: r.status,
      region: r.region,
      dispatchedAt: iso(r.dispatched_at),
      ...(r.worker_id ? { workerId: r.worker_id } : {}),
      ...(r.started_at ? { startedAt: iso(r.started_at) } : {}),
      ...(r.completed_at ? { completedAt: iso(r.completed_at) } : {}),
      ...(r.error ? { error: r.error } : {}),
    });
  }
  return byStep;
}

/** When each of these attempts was dispatched (the engine's clock), keyed `<taskId>:<attempt>`. */
export async function dispatchTimesOf(q: Queryable, attempts: Array<{ taskId: string; attempt: number }>): Promise<Map<string, Date>> {
  if (attempts.length === 0) return new Map();
  const { rows } = await q.query<{ task_id: string; attempt: number; dispatched_at: Date | string }>(
    `SELECT t.task_id, t.attempt, t.dispatched_at
       FROM tasks t JOIN unnest($1::text[], $2::int[]) AS x(task_id, attempt) ON t.task_id = x.task_id AND t.attempt = x.attempt`,
    [attempts.map((a) => a.taskId), attempts.map((a) => a.attempt)],
  );
  return new Map(rows.map((r) => [`${r.task_id}:${r.attempt}`, new Date(r.dispatched_at)]));
}

/**
 * The region each of these attempts was sent to (as routing last recorded it), keyed
 * `<taskId>:<attempt>`: what a worker's result must agree with. One indexed read per result
 * batch, inside its transaction.
 */
export async function attemptRegionsOf(q: Queryable, attempts: Array<{ taskId: string; attempt: number }>): Promise<Map<string, string>> {
  if (attempts.length === 0) return new Map();
  const { rows } = await q.query<{ task_id: string; attempt: number; region: string }>(
    `SELECT t.task_id, t.attempt, t.region
       FROM tasks t JOIN unnest($1::text[], $2::int[]) AS x(task_id, attempt) ON t.task_id = x.task_id AND t.attempt = x.attempt`,
    [attempts.map((a) => a.taskId), attempts.map((a) => a.attempt)],
    "fm_attempt_regions",
  );
  return new Map(rows.map((r) => [`${r.task_id}:${r.attempt}`, r.region]));
}

/** The regions a step's attempts up to `attempt` were sent to: where its runs could have saved a checkpoint. */
export async function regionsRunIn(q: Queryable, taskId: string, attempt: number): Promise<string[]> {
  const { rows } = await q.query<{ region: string }>(`SELECT DISTINCT region FROM tasks WHERE task_id = $1 AND attempt <= $2`, [taskId, attempt], "fm_regions_run_in");
  return rows.map((r) => r.region);
}
