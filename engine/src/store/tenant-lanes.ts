import type { Changes, LaneDispatch, LaneRelease } from "../execution/changes.js";
import type { Db, Queryable } from "./db.js";
import type { OutboxMessage } from "./outbox.js";

/** The default cap for every tenant (the `'*'` row); a tenant's own row overrides it. */
export async function setDefaultTenantMaxInFlight(db: Db, maxInFlight: number): Promise<void> {
  await db.query(
    `INSERT INTO tenant_limits (tenant_id, max_in_flight) VALUES ('*', $1)
     ON CONFLICT (tenant_id) DO UPDATE SET max_in_flight = excluded.max_in_flight`,
    [maxInFlight],
  );
}

export async function setTenantMaxInFlight(db: Db, tenantId: string, maxInFlight: number): Promise<void> {
  await db.query(
    `INSERT INTO tenant_limits (tenant_id, max_in_flight) VALUES ($1, $2)
     ON CONFLICT (tenant_id) DO UPDATE SET max_in_flight = excluded.max_in_flight`,
    [tenantId, maxInFlight],
  );
}

export interface LaneState {
  tenantId: string;
  lane: string;
  inFlight: number;
  queued: number;
  maxInFlight: number;
}

/** Every tenant lane with work in flight or queued (for status pages and tests). */
export async function listTenantLanes(q: Queryable): Promise<LaneState[]> {
  const { rows } = await q.query<LaneState>(
    `SELECT l.tenant_id AS "tenantId", l.lane, l.in_flight AS "inFlight",
            (SELECT count(*)::int FROM tenant_queue t WHERE t.tenant_id = l.tenant_id AND t.lane = l.lane) AS queued,
            coalesce((SELECT max_in_flight FROM tenant_limits WHERE tenant_id = l.tenant_id),
                     (SELECT max_in_flight FROM tenant_limits WHERE tenant_id = '*'), 0) AS "maxInFlight"
       FROM tenant_lanes l ORDER BY l.tenant_id, l.lane`,
  );
  return rows.filter((r) => r.inFlight > 0 || r.queued > 0);
}

/**
 * Lanes with tasks waiting although they have room: a raised cap, or a queued row another
 * transaction had locked when the lane's last task settled. The deadline sweep admits them.
 */
export async function lanesWithRoom(q: Queryable): Promise<Array<{ tenantId: string; lane: string }>> {
  const { rows } = await q.query<{ tenantId: string; lane: string }>(
    `SELECT DISTINCT w.tenant_id AS "tenantId", w.lane
       FROM tenant_queue w
       LEFT JOIN tenant_lanes l ON l.tenant_id = w.tenant_id AND l.lane = w.lane
       LEFT JOIN tenant_limits own ON own.tenant_id = w.tenant_id
       LEFT JOIN tenant_limits dflt ON dflt.tenant_id = '*'
      WHERE coalesce(own.max_in_flight, dflt.max_in_flight, 0) = 0
         OR coalesce(l.in_flight, 0) < coalesce(own.max_in_flight, dflt.max_in_flight, 0)
      LIMIT 100`,
  );
  return rows;
}

const keyOf = (x: { tenantId: string; lane: string }) => `${x.tenantId}\u0000${x.lane}`;

interface QueuedRow {
  execution_id: string;
  messages: OutboxMessage[];
  not_before: Date | string | null;
}

/**
 * Admission, inside the transaction that dispatched or settled tenants' tasks: released
 * attempts free their lane's slot (or leave the queue, if they never got one); the lane's
 * oldest queued tasks take the free slots first, then this transaction's new tasks, and what
 * does not fit is queued. Lane rows are locked in a fixed order, so concurrent transactions
 * cannot deadlock on them; a lane's count is exact because only these statements change it.
 */
/** The changes dispatch or release tasks of tenant lanes: admission reads and writes lane rows. */
export function needsAdmission(out: Changes): boolean {
  return out.laneDispatches().length > 0 || out.laneReleases().length > 0 || out.touchedLanes.length > 0;
}

export async function admitTenantTasks(q: Queryable, out: Changes): Promise<void> {
  // An attempt dispatched and released in this same transaction (a sibling step failed the
  // execution) was never counted and must not be published: the two cancel out.
  const releasedNow = new Set(out.laneReleases().map((r) => r.taskKey));
  const dispatchedNow = new Set(out.laneDispatches().map((d) => d.taskKey));
  const dispatches = out.laneDispatches().filter((d) => !releasedNow.has(d.taskKey));
  const releases = out.laneReleases().filter((r) => !dispatchedNow.has(r.taskKey));
  if (dispatches.length === 0 && releases.length === 0 && out.touchedLanes.length === 0) return;

  const freed = new Map<string, number>();
  if (releases.length > 0) {
    const { rows } = await q.query<{ task_key: string }>(
      `WITH done AS (DELETE FROM tenant_admissions WHERE task_key = ANY($1::text[]))
       DELETE FROM tenant_queue WHERE task_key = ANY($1::text[]) RETURNING task_key`,
      [releases.map((r) => r.taskKey)],
    );
    const wereQueued = new Set(rows.map((r) => r.task_key));
    for (const r of releases) if (!wereQueued.has(r.taskKey)) freed.set(keyOf(r), (freed.get(keyOf(r)) ?? 0) + 1);
  }

  const lanes = new Map<string, { tenantId: string; lane: string; dispatches: LaneDispatch[] }>();
  const laneOf = (x: LaneRelease | LaneDispatch) => {
    let entry = lanes.get(keyOf(x));
    if (!entry) lanes.set(keyOf(x), (entry = { tenantId: x.tenantId, lane: x.lane, dispatches: [] }));
    return entry;
  };
  for (const r of releases) laneOf(r);
  for (const t of out.touchedLanes) laneOf({ ...t, taskKey: "" });
  for (const d of dispatches) laneOf(d).dispatches.push(d);
  const ordered = [...lanes.values()].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
  const tenants = ordered.map((l) => l.tenantId);
  const laneNames = ordered.map((l) => l.lane);

  await q.query(
    `INSERT INTO tenant_lanes (tenant_id, lane) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
    [tenants, laneNames],
  );
  const { rows: locked } = await q.query<{ tenant_id: string; lane: string; in_flight: number; max_in_flight: number }>(
    `SELECT l.tenant_id, l.lane, l.in_flight,
            coalesce(own.max_in_flight, dflt.max_in_flight, 0) AS max_in_flight
       FROM tenant_lanes l
       LEFT JOIN tenant_limits own ON own.tenant_id = l.tenant_id
       LEFT JOIN tenant_limits dflt ON dflt.tenant_id = '*'
      WHERE (l.tenant_id, l.lane) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      ORDER BY l.tenant_id, l.lane
      FOR UPDATE OF l`,
    [tenants, laneNames],
  );

  const toQueue: LaneDispatch[] = [];
  const counts: Array<{ tenantId: string; lane: string; inFlight: number }> = [];
  for (const row of locked) {
    const lane = lanes.get(keyOf({ tenantId: row.tenant_id, lane: row.lane }))!;
    let inFlight = Math.max(0, row.in_flight - (freed.get(keyOf(lane)) ?? 0));
    const cap = row.max_in_flight > 0 ? row.max_in_flight : Number.POSITIVE_INFINITY;
    let queueEmpty = true;
    if (inFlight < cap) {
      // Older queued tasks of this lane go first (FIFO within a tenant).
      const want = Number.isFinite(cap) ? cap - inFlight : 1000;
      const { rows: next } = await q.query<QueuedRow>(
        `WITH admitted AS (
           DELETE FROM tenant_queue WHERE id IN (
             SELECT id FROM tenant_queue WHERE tenant_id = $1 AND lane = $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
           RETURNING task_key, execution_id, messages, not_before),
         stamped AS (
           INSERT INTO tenant_admissions (task_key) SELECT task_key FROM admitted ON CONFLICT (task_key) DO UPDATE SET admitted_at = now())
         SELECT execution_id, messages, not_before FROM admitted`,
        [lane.tenantId, lane.lane, want],
      );
      for (const queued of next) publish(out, queued.execution_id, queued.messages, queued.not_before ? new Date(queued.not_before) : undefined);
      inFlight += next.length;
      queueEmpty = next.length < want;
    }
    for (const d of lane.dispatches) {
      if (queueEmpty && inFlight < cap) {
        publish(out, executionOf(d), d.messages, d.notBefore);
        inFlight++;
      } else {
        toQueue.push(d);
      }
    }
    counts.push({ tenantId: lane.tenantId, lane: lane.lane, inFlight });
  }

  if (toQueue.length > 0) {
    await q.query(
      `INSERT INTO tenant_queue (tenant_id, lane, task_key, execution_id, messages, not_before)
       SELECT x."tenantId", x.lane, x."taskKey", x."executionId", x.messages, x."notBefore"
         FROM jsonb_to_recordset($1::jsonb) AS x("tenantId" text, lane text, "taskKey" text, "executionId" text, messages jsonb, "notBefore" timestamptz)
       ON CONFLICT (task_key) DO NOTHING`,
      [JSON.stringify(toQueue.map((d) => ({ ...d, executionId: executionOf(d), notBefore: d.notBefore?.toISOString() ?? null })))],
    );
  }
  await q.query(
    `UPDATE tenant_lanes l SET in_flight = x.n
       FROM unnest($1::text[], $2::text[], $3::int[]) AS x(tenant_id, lane, n)
      WHERE l.tenant_id = x.tenant_id AND l.lane = x.lane`,
    [counts.map((c) => c.tenantId), counts.map((c) => c.lane), counts.map((c) => c.inFlight)],
  );
}

/** `<executionId>/<stepId>:<attempt>` → executionId */
function executionOf(d: LaneDispatch): string {
  return d.taskKey.slice(0, d.taskKey.indexOf("/"));
}

function publish(out: Changes, executionId: string, messages: OutboxMessage[], notBefore: Date | undefined): void {
  const effects = out.of(executionId);
  if (notBefore && notBefore.getTime() > Date.now()) effects.delayed.push({ notBefore, messages });
  else effects.messages.push(...messages);
}
