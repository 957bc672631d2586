import type { Priority } from "@flowmonkey/shared";
import type { TaskRoute } from "../regions/router.js";
import type { SealRequest } from "../vault/seal-request.js";
import type { Db, Queryable } from "./db.js";

/** One message to publish after commit: JetStream (tasks, with a de-dup id) or core (events). */
export interface OutboxMessage {
  subject: string;
  body: unknown;
  /** JetStream publish with this Nats-Msg-Id; absent = core publish. */
  msgId?: string;
  /** Engine-internal, never written or published: the task's secrets to seal (see vault/seal-pass.ts). */
  seal?: SealRequest;
  /** Tasks: what routing must respect (residency, pinning, capabilities); the relay picks the region. Never published. */
  route?: TaskRoute;
  /**
   * Never published: `body` is the failure result the engine applies itself for a task that
   * could not be sent (too large for the server), written in place of that task before commit.
   */
  conclude?: true;
  /** Never published: a sub-flow step's child execution, which the engine starts itself (relay.startChildren). */
  startChild?: ChildStart;
  /** Never published: a child execution to cancel (its step's attempt ended). */
  cancelChild?: string;
  /** Never published: the children still running of a map step's run that ended (its items were sub-flows). */
  cancelChildrenOf?: { executionId: string; stepId: string; run: number };
}

/** What a sub-flow step starts: an execution of `flowId` with the step's input, as its child. */
export interface ChildStart {
  flowId: string;
  flowVersion?: number | undefined;
  executionId: string;
  input: unknown;
  tenantId?: string | undefined;
  priority: Priority;
  parent: { executionId: string; stepId: string; attempt: number; depth: number; taskId?: string };
}

/** A message the engine applies itself instead of publishing it. */
export const isInternal = (m: OutboxMessage): boolean =>
  m.conclude === true || m.startChild !== undefined || m.cancelChild !== undefined || m.cancelChildrenOf !== undefined;

/** The children still running that items of these map runs started (executions_parent index). */
export async function runningItemChildren(q: Queryable, runs: Array<{ executionId: string; stepId: string; run: number }>): Promise<string[]> {
  if (runs.length === 0) return [];
  const { rows } = await q.query<{ id: string }>(
    `SELECT e.id FROM executions e
       JOIN jsonb_to_recordset($1::jsonb) AS x("executionId" text, "stepId" text, run int)
         ON e.parent_execution_id = x."executionId" AND e.parent_step_id = x."stepId"
      WHERE e.status NOT IN ('completed', 'failed', 'cancelled')
        AND left(e.parent_task_id, length(x."executionId" || '/' || x."stepId" || '#' || x.run || '.')) = x."executionId" || '/' || x."stepId" || '#' || x.run || '.'`,
    [JSON.stringify(runs)],
  );
  return rows.map((r) => r.id);
}

export interface OutboxRow {
  id: number;
  messages: OutboxMessage[];
  /** Earlier tries that left messages unpublished (0: a fresh row). */
  tries: number;
}

/** A message the relay gave up on, as recorded in outbox_dead_letters. */
export interface OutboxDeadLetter {
  subject: string;
  msgId?: string | undefined;
  executionId?: string | undefined;
  code: string;
  reason: string;
  bytes: number;
  tries: number;
  /** Kept only when small (a message too large for NATS is not worth keeping twice). */
  body?: unknown;
}

/**
 * Stores the messages of one transaction as one row (one write, however many messages).
 * `claimMs` > 0: the committing process publishes them itself right after commit, and the
 * relay's sweep only takes them if that claim expires (the process died in between).
 */
export async function enqueueOutbox(
  q: Queryable,
  messages: OutboxMessage[],
  options: { notBefore?: Date; claimMs: number },
): Promise<number | undefined> {
  if (messages.length === 0) return undefined;
  const { rows } = await q.query<{ id: number }>(
    `INSERT INTO outbox (messages, not_before, claimed_until)
     VALUES ($1::jsonb, coalesce($2::timestamptz, now()),
             CASE WHEN $3::int > 0 THEN now() + make_interval(secs => $3::int / 1000.0) END)
     RETURNING id::int AS id`,
    [JSON.stringify(messages), options.notBefore?.toISOString() ?? null, options.claimMs],
  );
  return rows[0]?.id;
}

/** Claims due rows nobody holds (or whose holder's claim expired), skipping rows another relay locked. */
export async function claimDueOutbox(db: Db, options: { limit: number; leaseMs: number }): Promise<OutboxRow[]> {
  const { rows } = await db.query<OutboxRow>(
    `UPDATE outbox SET claimed_until = now() + make_interval(secs => $2::int / 1000.0)
      WHERE id IN (SELECT id FROM outbox
                    WHERE not_before <= now() AND (claimed_until IS NULL OR claimed_until < now())
                    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id::int AS id, messages, tries`,
    [options.limit, options.leaseMs],
  );
  return rows;
}

/** Lets the sweep take a row again after `inMs` (its publish failed: a full queue, a broken link). */
export async function releaseOutboxClaim(db: Db, id: number, inMs: number): Promise<void> {
  await db.query("UPDATE outbox SET claimed_until = now() + make_interval(secs => $2::int / 1000.0) WHERE id = $1", [id, inMs]);
}

/**
 * After a try that left some messages unpublished: the row keeps only those (what was sent is
 * not sent again), counts the try, and is due again in `retryInMs`; messages given up on are
 * recorded with their reason. A row left with nothing is deleted. One transaction.
 */
export async function settleOutboxRow(
  db: Db,
  row: { id: number; remaining: OutboxMessage[]; dead: OutboxDeadLetter[]; lastError: string; retryInMs: number },
): Promise<void> {
  await db.tx(async (q) => {
    if (row.dead.length > 0) {
      await q.query(
        `INSERT INTO outbox_dead_letters (subject, msg_id, execution_id, code, reason, bytes, tries, body)
         SELECT x.subject, x."msgId", x."executionId", x.code, x.reason, x.bytes, x.tries, x.body
           FROM jsonb_to_recordset($1::jsonb) AS x(subject text, "msgId" text, "executionId" text, code text, reason text,
                bytes int, tries int, body jsonb)`,
        [JSON.stringify(row.dead)],
      );
    }
    if (row.remaining.length === 0) {
      await q.query("DELETE FROM outbox WHERE id = $1", [row.id]);
      return;
    }
    await q.query(
      `UPDATE outbox SET messages = $2::jsonb, tries = tries + 1, last_error = $3,
              claimed_until = now() + make_interval(secs => $4::int / 1000.0)
        WHERE id = $1`,
      [row.id, JSON.stringify(row.remaining), row.lastError.slice(0, 2000), row.retryInMs],
    );
  });
}

/**
 * Of the given attempts, those their step still waits for (`dispatched`, same attempt) — or,
 * for a map item, its item in the step's current run: a task of any other is stale. Keyed
 * `<taskId>:<attempt>`.
 */
export async function attemptsStillDispatched(
  q: Queryable,
  attempts: Array<{ taskId: string; executionId: string; stepId: string; attempt: number }>,
): Promise<Set<string>> {
  if (attempts.length === 0) return new Set();
  const { rows } = await q.query<{ key: string }>(
    `SELECT x."taskId" || ':' || x.attempt AS key
       FROM jsonb_to_recordset($1::jsonb) AS x("taskId" text, "executionId" text, "stepId" text, attempt int)
       JOIN executions e ON e.id = x."executionId"
      WHERE e.status NOT IN ('completed', 'failed', 'cancelled')
        AND e.steps->x."stepId"->>'status' = 'dispatched'
        AND CASE WHEN e.steps->x."stepId" ? 'map'
                 THEN EXISTS (SELECT 1 FROM map_items m
                               WHERE m.execution_id = e.id AND m.step_id = x."stepId"
                                 AND m.run = (e.steps->x."stepId"->'map'->>'run')::int
                                 AND m.idx = (SELECT CASE WHEN n ~ '^[0-9]{1,9}$' THEN n::int END FROM (SELECT reverse(split_part(reverse(x."taskId"), '.', 1)) AS n) AS suffix)
                                 AND x."taskId" = e.id || '/' || x."stepId" || '#' || m.run || '.' || m.idx
                                 AND m.status = 'dispatched' AND m.attempts = x.attempt)
                 ELSE (e.steps->x."stepId"->>'attempts')::int = x.attempt AND x."taskId" = e.id || '/' || x."stepId" END`,
    [JSON.stringify(attempts.map(({ taskId, executionId, stepId, attempt }) => ({ taskId, executionId, stepId, attempt })))],
  );
  return new Set(rows.map((r) => r.key));
}

export async function deleteOutbox(db: Db, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [ids]);
}

/** When the next delayed row is due (for the relay's sleep), if any. */
export async function nextDueAt(db: Db): Promise<Date | undefined> {
  const { rows } = await db.query<{ at: Date | string | null }>(
    "SELECT min(greatest(not_before, coalesce(claimed_until, not_before))) AS at FROM outbox",
  );
  const at = rows[0]?.at;
  return at ? new Date(at) : undefined;
}
