import type { DeadTask, DeadTaskSummary, DlqListRequest, Failure, Task } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

/** A dead letter as the transaction that declares it writes it. */
export interface DeadTaskRow {
  id: string;
  executionId: string;
  stepId: string;
  attempt: number;
  region: string;
  handler: string;
  reason: DeadTask["reason"];
  lastError?: Failure;
  deliveries: number;
  task: Task;
}

export const deadTaskId = (taskId: string, attempt: number) => `${taskId}:${attempt}`;

/** Dead letters from a jsonb array parameter ($n); declaring the same one twice keeps the first. */
export const insertDeadTasksSql = (param: string) => `
  INSERT INTO dead_tasks (id, execution_id, step_id, attempt, region, handler, reason, last_error, deliveries, task)
  SELECT x.id, x."executionId", x."stepId", x.attempt, x.region, x.handler, x.reason, x."lastError", x.deliveries, x.task
    FROM jsonb_to_recordset(${param}::jsonb) AS x(id text, "executionId" text, "stepId" text, attempt int, region text,
         handler text, reason text, "lastError" jsonb, deliveries int, task jsonb)
  ON CONFLICT (id) DO NOTHING`;

interface DeadTaskDbRow {
  id: string;
  execution_id: string;
  step_id: string;
  attempt: number;
  region: string;
  handler: string;
  reason: DeadTask["reason"];
  last_error: Failure | null;
  deliveries: number;
  task: Task;
  created_at: Date | string;
  replayed_at: Date | string | null;
}

const iso = (at: Date | string) => new Date(at).toISOString();

function summaryOf(row: DeadTaskDbRow): DeadTaskSummary {
  return {
    id: row.id,
    executionId: row.execution_id,
    flowId: row.task.flowId,
    stepId: row.step_id,
    attempt: row.attempt,
    region: row.region,
    handler: row.handler,
    reason: row.reason,
    ...(row.last_error ? { lastError: row.last_error } : {}),
    deliveries: row.deliveries,
    at: iso(row.created_at),
    ...(row.replayed_at ? { replayedAt: iso(row.replayed_at) } : {}),
  };
}

/** Newest first. */
export async function listDeadTasks(q: Queryable, request: Required<Pick<DlqListRequest, "includeReplayed" | "limit">> & DlqListRequest): Promise<DeadTaskSummary[]> {
  const { rows } = await q.query<DeadTaskDbRow>(
    `SELECT * FROM dead_tasks
      WHERE ($1::text IS NULL OR region = $1) AND ($2::text IS NULL OR handler = $2) AND ($3::boolean OR replayed_at IS NULL)
      ORDER BY created_at DESC, id LIMIT $4`,
    [request.region ?? null, request.handler ?? null, request.includeReplayed, request.limit],
  );
  return rows.map(summaryOf);
}

export interface StoredDeadTask {
  id: string;
  executionId: string;
  stepId: string;
  attempt: number;
  replayedAt?: string;
}

/** Locks the named dead letters (inside the replay transaction). */
export async function lockDeadTasks(q: Queryable, ids: string[]): Promise<Map<string, StoredDeadTask>> {
  const { rows } = await q.query<DeadTaskDbRow>("SELECT * FROM dead_tasks WHERE id = ANY($1::text[]) FOR UPDATE", [ids]);
  return new Map(
    rows.map((r) => [
      r.id,
      { id: r.id, executionId: r.execution_id, stepId: r.step_id, attempt: r.attempt, ...(r.replayed_at ? { replayedAt: iso(r.replayed_at) } : {}) },
    ]),
  );
}

export async function markReplayed(q: Queryable, ids: string[]): Promise<void> {
  if (ids.length > 0) await q.query("UPDATE dead_tasks SET replayed_at = now() WHERE id = ANY($1::text[])", [ids]);
}

/** Deletes dead letters (of one pool, or all); replayed ones only when asked. Returns how many. */
export async function purgeDeadTasks(q: Queryable, filter: { region?: string | undefined; handler?: string | undefined; includeReplayed: boolean }): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM dead_tasks
        WHERE ($1::text IS NULL OR region = $1) AND ($2::text IS NULL OR handler = $2) AND ($3::boolean OR replayed_at IS NULL)
        RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [filter.region ?? null, filter.handler ?? null, filter.includeReplayed],
  );
  return rows[0]?.n ?? 0;
}

/** The task a dead letter kept, exactly as it was queued (with its contextRef, if it had one); undefined when there is none. */
export async function getDeadTaskBody(q: Queryable, id: string): Promise<Task | undefined> {
  const { rows } = await q.query<{ task: Task }>("SELECT task FROM dead_tasks WHERE id = $1", [id]);
  return rows[0]?.task;
}
