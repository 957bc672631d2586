import type { Failure } from "@flowmonkey/shared";
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
}

export async function insertTaskAttempts(q: Queryable, rows: TaskAttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO tasks (task_id, attempt, execution_id, step_id, handler, region, status, dispatched_at)
     SELECT x."taskId", x.attempt, x."executionId", x."stepId", x.handler, x.region, 'dispatched', x."dispatchedAt"
       FROM jsonb_to_recordset($1::jsonb) AS x("taskId" text, attempt int, "executionId" text, "stepId" text,
            handler text, region text, "dispatchedAt" timestamptz)
     ON CONFLICT (task_id, attempt) DO NOTHING`,
    [JSON.stringify(rows)],
  );
}

/** Records outcomes; an `ignored` outcome never overwrites the attempt's real one. */
export async function recordTaskOutcomes(q: Queryable, rows: TaskOutcomeRow[]): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `UPDATE tasks t
        SET status = x.status, worker_id = coalesce(x."workerId", t.worker_id),
            started_at = coalesce(x."startedAt", t.started_at), completed_at = coalesce(x."completedAt", t.completed_at),
            output = x.output, error = x.error
       FROM jsonb_to_recordset($1::jsonb) AS x("taskId" text, attempt int, status text, "workerId" text,
            "startedAt" timestamptz, "completedAt" timestamptz, output jsonb, error jsonb)
      WHERE t.task_id = x."taskId" AND t.attempt = x.attempt AND x.status <> 'ignored' AND t.status = 'dispatched'`,
    [JSON.stringify(rows.filter((r) => r.status !== "ignored"))],
  );
}
