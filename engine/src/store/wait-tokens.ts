import type { Queryable } from "./db.js";

/** A waiting step's way back: written with the `wait` result, deleted when it resumes or its execution ends. */
export interface WaitTokenRow {
  token: string;
  executionId: string;
  stepId: string;
  attempt: number;
  tenantId?: string;
  /** The region the step parked in: only trusted events and that region's may resume it. */
  region: string;
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

/** A wait for an event starts not caught up (caught_up_at NULL); one without an event needs no catch-up. */
export const insertWaitTokensSql = (param: string) => `
  INSERT INTO wait_tokens (token, execution_id, step_id, attempt, tenant_id, region, event_name, event_filter, wait_until, caught_up_at)
  SELECT x.token, x."executionId", x."stepId", x.attempt, x."tenantId", x.region, x."eventName", x."eventFilter", x."waitUntil",
         CASE WHEN x."eventName" IS NULL THEN now() END
    FROM jsonb_to_recordset(${param}::jsonb) AS x(token text, "executionId" text, "stepId" text, attempt int, "tenantId" text,
         region text, "eventName" text, "eventFilter" text, "waitUntil" timestamptz)
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

/** Waits for any of these event names, with their filters and regions. */
export async function findWaitsForEvents(q: Queryable, names: string[]): Promise<Array<DueWait & { eventName: string; eventFilter: string | null; region: string | null }>> {
  if (names.length === 0) return [];
  const { rows } = await q.query<DueWait & { eventName: string; eventFilter: string | null; region: string | null }>(
    `SELECT token, execution_id AS "executionId", step_id AS "stepId", attempt, event_name AS "eventName", event_filter AS "eventFilter", region
       FROM wait_tokens WHERE event_name = ANY($1::text[])`,
    [names],
  );
  return rows;
}

/** An event wait whose catch-up the sweep has claimed. */
export interface StaleCatchUp extends DueWait {
  eventName: string;
  eventFilter: string | null;
  region: string | null;
  /** FM_EVENTS sequence of the event that last resumed the step (from its execution row). */
  afterSeq: number | null;
  /** Claims of it so far, this one included. */
  tries: number;
}

/**
 * Claims event waits whose catch-up has not completed although they were recorded more than
 * `graceMs` ago (the engine that recorded them died before it ran, or it failed), oldest
 * first, for one replica: SKIP LOCKED keeps two sweeps from taking the same rows, and the
 * claim (catch_up_not_before) keeps them from taking them again before `backoffMs · 2^tries`
 * (tries before this claim; at most `maxBackoffMs`) has passed — the lease of this catch-up
 * and, if it fails, the backoff of the next.
 */
export async function claimStaleCatchUps(q: Queryable, opts: { graceMs: number; backoffMs: number; maxBackoffMs: number; limit: number }): Promise<StaleCatchUp[]> {
  const { rows } = await q.query<StaleCatchUp>(
    `WITH claimed AS (
       UPDATE wait_tokens w
          SET catch_up_tries = w.catch_up_tries + 1,
              catch_up_not_before = now() + make_interval(secs => LEAST($3::float8, $4::float8 * power(2, LEAST(w.catch_up_tries, 30))) / 1000.0)
        WHERE w.token IN (
          SELECT token FROM wait_tokens
           WHERE caught_up_at IS NULL AND event_name IS NOT NULL
             AND created_at <= now() - make_interval(secs => $2::float8 / 1000.0)
             AND (catch_up_not_before IS NULL OR catch_up_not_before <= now())
           ORDER BY created_at LIMIT $1
             FOR UPDATE SKIP LOCKED)
       RETURNING w.token, w.execution_id, w.step_id, w.attempt, w.region, w.event_name, w.event_filter, w.catch_up_tries, w.created_at)
     SELECT c.token, c.execution_id AS "executionId", c.step_id AS "stepId", c.attempt, c.region, c.event_name AS "eventName",
            c.event_filter AS "eventFilter", (e.steps -> c.step_id ->> 'lastEventSeq')::bigint::float8 AS "afterSeq", c.catch_up_tries AS tries
       FROM claimed c JOIN executions e ON e.id = c.execution_id
      ORDER BY c.created_at`,
    [opts.limit, opts.graceMs, opts.maxBackoffMs, opts.backoffMs],
    "fm_claim_stale_catch_ups",
  );
  return rows;
}

/** Records that these waits' catch-up completed (only the attempt that parked: a later wait reusing the token still needs its own). */
export async function markCaughtUp(q: Queryable, waits: Array<{ token: string; attempt: number }>): Promise<void> {
  if (waits.length === 0) return;
  await q.query(
    `UPDATE wait_tokens w SET caught_up_at = now()
       FROM unnest($1::text[], $2::int[]) AS x(token, attempt)
      WHERE w.token = x.token AND w.attempt = x.attempt AND w.caught_up_at IS NULL`,
    [waits.map((w) => w.token), waits.map((w) => w.attempt)],
    "fm_mark_caught_up",
  );
}
