import type { Queryable } from "./db.js";

/** A waiting step's way back: written with the `wait` result, deleted when it resumes or its execution ends. */
export interface WaitTokenRow {
  token: string;
  executionId: string;
  stepId: string;
  attempt: number;
  tenantId?: string;
  eventName?: string;
  eventFilter?: string;
  waitUntil?: string;
}

/** A wait that something (a resume request, an event, its timer) says is over. */
export interface DueWait {
  token: string;
  executionId: string;
  stepId: string;
  /** The attempt that parked. */
  attempt: number;
}

export const insertWaitTokensSql = (param: string) => `
  INSERT INTO wait_tokens (token, execution_id, step_id, attempt, tenant_id, event_name, event_filter, wait_until)
  SELECT x.token, x."executionId", x."stepId", x.attempt, x."tenantId", x."eventName", x."eventFilter", x."waitUntil"
    FROM jsonb_to_recordset(${param}::jsonb) AS x(token text, "executionId" text, "stepId" text, attempt int, "tenantId" text,
         "eventName" text, "eventFilter" text, "waitUntil" timestamptz)
  ON CONFLICT (token) DO NOTHING`;

export const deleteWaitTokensSql = (param: string) => `
  DELETE FROM wait_tokens WHERE token IN (SELECT jsonb_array_elements_text(${param}::jsonb))`;

export async function findWaitsByTokens(q: Queryable, tokens: string[]): Promise<Map<string, DueWait>> {
  const { rows } = await q.query<DueWait>(
    `SELECT token, execution_id AS "executionId", step_id AS "stepId", attempt FROM wait_tokens WHERE token = ANY($1::text[])`,
    [[...new Set(tokens)]],
  );
  return new Map(rows.map((r) => [r.token, r]));
}

/** Of these tokens, the ones some waiting step already holds. */
export async function tokensInUse(q: Queryable, tokens: string[]): Promise<Set<string>> {
  if (tokens.length === 0) return new Set();
  const { rows } = await q.query<{ token: string }>("SELECT token FROM wait_tokens WHERE token = ANY($1::text[])", [tokens]);
  return new Set(rows.map((r) => r.token));
}

/** Waits whose `waitUntil` has passed, oldest first. */
export async function findExpiredWaits(q: Queryable, limit: number): Promise<DueWait[]> {
  const { rows } = await q.query<DueWait>(
    `SELECT token, execution_id AS "executionId", step_id AS "stepId", attempt
       FROM wait_tokens WHERE wait_until <= now() ORDER BY wait_until LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Waits for any of these event names, with their filters. */
export async function findWaitsForEvents(q: Queryable, names: string[]): Promise<Array<DueWait & { eventName: string; eventFilter: string | null }>> {
  if (names.length === 0) return [];
  const { rows } = await q.query<DueWait & { eventName: string; eventFilter: string | null }>(
    `SELECT token, execution_id AS "executionId", step_id AS "stepId", attempt, event_name AS "eventName", event_filter AS "eventFilter"
       FROM wait_tokens WHERE event_name = ANY($1::text[])`,
    [names],
  );
  return rows;
}
