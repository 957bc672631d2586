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
}

export interface OutboxRow {
  id: number;
  messages: OutboxMessage[];
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
      RETURNING id::int AS id, messages`,
    [options.limit, options.leaseMs],
  );
  return rows;
}

/** Lets the sweep take a row again after `inMs` (its publish failed: a full queue, a broken link). */
export async function releaseOutboxClaim(db: Db, id: number, inMs: number): Promise<void> {
  await db.query("UPDATE outbox SET claimed_until = now() + make_interval(secs => $2::int / 1000.0) WHERE id = $1", [id, inMs]);
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
