import { abortableDelay, readQueueSources, toError, type Failure, type Logger, type Names, type QueueSource } from "@flowmonkey/shared";
import { applyResults, engineConcluded, type ApplyEnv, type ResultToApply } from "../results/apply-result.js";
import type { Relay } from "../outbox/relay.js";
import { Changes } from "../execution/changes.js";
import type { Queryable } from "../store/db.js";
import { lanesWithRoom } from "../store/tenant-lanes.js";
import { transition } from "../store/transition.js";

export interface DeadlineSweepOptions extends ApplyEnv {
  /** Every domain's task stream (the hub's and each leaf region's): an attempt's pool is in its region's. */
  queueSources: readonly QueueSource[];
  names: Names;
  relay: Relay;
  log: Logger;
  /** How long after an attempt's deadline the engine gives up waiting for its result. */
  graceMs: number;
  intervalMs: number;
  /**
   * Whether a live worker (KV fm_workers) serves `handler` in `region`. An attempt waits in its
   * queue past its deadline only while one does; absent: always (no directory to ask).
   */
  served?: (region: string, handler: string) => boolean;
}

export interface OverdueAttempt {
  /** The step's task id, or a map item's (execution/map-step.ts). */
  taskId: string;
  executionId: string;
  stepId: string;
  attempt: number;
  handler: string;
  region: string;
  deadlineAt: string;
}

/** Not overdue after all: the attempt's task was held unpublished (a paused lane) and its timeout counts from its release. */
const NOT_HELD = `
  NOT EXISTS (SELECT 1 FROM held_tasks h WHERE h.task_key = t.task_id || ':' || t.attempt
                AND (h.released_at IS NULL
                     OR h.released_at + (deadline.at - t.dispatched_at) >= now() - make_interval(secs => $1::int / 1000.0)))`;

/**
 * Attempts past deadline + grace that still have no result. Only running executions are read
 * (an index scan on status), and the deadline lives in the execution row the engine writes
 * anyway: timing attempts out costs no write on the hot path. A map item's deadline lives in
 * its map_items row (a partial index holds only items in flight).
 */
export async function findOverdueAttempts(q: Queryable, graceMs: number, limit: number): Promise<OverdueAttempt[]> {
  const { rows } = await q.query<OverdueAttempt>(
    `(SELECT t.task_id AS "taskId", e.id AS "executionId", s.key AS "stepId", t.attempt, t.handler, t.region, s.value->>'deadlineAt' AS "deadlineAt"
       FROM executions e
      CROSS JOIN LATERAL jsonb_each(e.steps) AS s
      CROSS JOIN LATERAL (SELECT (s.value->>'deadlineAt')::timestamptz AS at) AS deadline
       JOIN tasks t ON t.task_id = e.id || '/' || s.key AND t.attempt = (s.value->>'attempts')::int
      WHERE e.status = 'running' AND s.value->>'status' = 'dispatched'
        AND deadline.at < now() - make_interval(secs => $1::int / 1000.0)
        AND (e.tenant_id IS NULL OR (
          -- Still waiting for its tenant's turn: not published yet, so nothing can be late.
          NOT EXISTS (SELECT 1 FROM tenant_queue q WHERE q.task_key = t.task_id || ':' || t.attempt)
          -- Published late by its tenant's queue: its timeout counts from then.
          AND NOT EXISTS (SELECT 1 FROM tenant_admissions a WHERE a.task_key = t.task_id || ':' || t.attempt
                            AND a.admitted_at + (deadline.at - t.dispatched_at)
                                >= now() - make_interval(secs => $1::int / 1000.0))))
        AND ${NOT_HELD}
      ORDER BY deadline.at LIMIT $2)
     UNION ALL
     (SELECT t.task_id, e.id, m.step_id, t.attempt, t.handler, t.region, to_json(m.deadline_at) #>> '{}'
        FROM map_items m
        CROSS JOIN LATERAL (SELECT m.deadline_at AS at) AS deadline
        JOIN executions e ON e.id = m.execution_id
        JOIN tasks t ON t.task_id = m.execution_id || '/' || m.step_id || '#' || m.run || '.' || m.idx AND t.attempt = m.attempts
       WHERE m.status = 'dispatched' AND m.deadline_at < now() - make_interval(secs => $1::int / 1000.0)
         AND e.status = 'running' AND e.steps->m.step_id->>'status' = 'dispatched'
         AND (e.steps->m.step_id->'map'->>'run')::int = m.run
         AND ${NOT_HELD}
       ORDER BY m.deadline_at LIMIT $2)`,
    [graceMs, limit],
  );
  return rows;
}

/** Whether the outbox holds rows due longer ago than the grace: then deadlines say nothing about workers. */
async function relayBehind(q: Queryable, graceMs: number): Promise<boolean> {
  const { rows } = await q.query("SELECT 1 FROM outbox WHERE not_before < now() - make_interval(secs => $1::int / 1000.0) LIMIT 1", [graceMs]);
  return rows.length > 0;
}

/** `unserved`: the attempt was still queued with no live worker of its handler in its region. */
export function attemptTimedOut(attempt: OverdueAttempt, graceMs: number, unserved?: { handler: string; region: string }): Failure {
  return {
    code: "TASK_TIMEOUT",
    message:
      `no result for attempt ${attempt.attempt} by its deadline (${attempt.deadlineAt}) plus ${graceMs} ms: ` +
      (unserved
        ? `the engine timed it out (no live worker of ${unserved.handler} in ${unserved.region} took it)`
        : `the engine timed it out (the worker's own timeout result never arrived)`),
    retryable: true,
  };
}

const PAGE = 200;

/**
 * The engine's own clock on every attempt: a worker normally reports TASK_TIMEOUT itself, and
 * a dying worker's task is redelivered by JetStream, but when neither happens (a result lost,
 * a task message gone) the attempt is timed out here and the step's retry policy decides.
 *
 * A task can be overdue only because it is still queued behind others (deadlines count from
 * dispatch). So an attempt whose pool has undelivered tasks, or no consumer yet, is left alone
 * and looked at again a grace period later — as long as a live worker serves that handler in
 * that region. With none (a handler no worker serves, or whose workers are all gone), queued
 * means stuck: the attempt times out like any other, and the step's retry policy decides.
 * Safe with several replicas: a result applies once per attempt.
 */
export function startDeadlineSweep(options: DeadlineSweepOptions): { stop(): Promise<void>; sweepOnce(): Promise<number> } {
  const { log, graceMs } = options;
  const abort = new AbortController();
  /** `taskId:attempt` → not before this time (in memory: after a restart they are simply checked again). */
  const postponed = new Map<string, number>();

  /**
   * Per `<region>/<handler>`: whether any of the handler's pools there (every priority, the plain
   * pool and its capability-qualified ones: the attempt may wait in any of them) has undelivered
   * tasks. One consumer list per domain (the hub's, each leaf region's) per sweep that finds
   * overdue attempts; a pool not listed: "no-pool"; a region whose domain does not answer (its
   * link is down: its tasks may be queued there, their results held there): "unreachable".
   */
  async function backlogs(): Promise<(region: string, handler: string) => "queued" | "drained" | "unreachable" | "no-pool"> {
    const out = new Map<string, "queued" | "drained">();
    const unreachable = new Set<string>();
    for (const read of await readQueueSources(options.queueSources, options.names)) {
      if ("error" in read) {
        // A single server names no regions: nothing can be judged, try the whole sweep again.
        if (read.source.regions.length === 0) throw read.error;
        for (const region of read.source.regions) unreachable.add(region);
        continue;
      }
      for (const stat of read.stats) {
        const key = `${stat.region}/${stat.handler}`;
        if (stat.pending > 0) out.set(key, "queued");
        else if (!out.has(key)) out.set(key, "drained");
      }
    }
    return (region, handler) => out.get(`${region}/${handler}`) ?? (unreachable.has(region) ? "unreachable" : "no-pool");
  }

  /** Admits tasks waiting in tenant lanes that have room (nothing else would wake them). */
  async function admitStranded(): Promise<void> {
    // Read first, write only when there is something to admit: this runs every sweep.
    const lanes = await lanesWithRoom(options.db);
    if (lanes.length === 0) return;
    const out = new Changes();
    out.touchedLanes.push(...lanes);
    // The admission re-reads each lane under its row lock, so a lane that filled up meanwhile admits nothing.
    options.relay.afterCommit(await transition(options.db, [], async () => undefined, out));
  }

  async function sweepOnce(): Promise<number> {
    await admitStranded();
    const now = Date.now();
    // Tasks the relay could not publish yet (a full queue, a broken link) are not late: wait.
    if (await relayBehind(options.db, graceMs)) {
      log.debug({ graceMs }, "outbox has rows overdue by more than the grace; not timing attempts out now");
      return 0;
    }
    for (const [key, until] of postponed) if (until <= now) postponed.delete(key);
    const overdue = (await findOverdueAttempts(options.db, graceMs, PAGE + postponed.size)).filter(
      (a) => !postponed.has(`${a.taskId}:${a.attempt}`),
    );
    if (overdue.length === 0) return 0;
    const backlogOf = await backlogs();
    const results: ResultToApply[] = [];
    for (const a of overdue.slice(0, PAGE)) {
      const backlog = backlogOf(a.region, a.handler);
      const ids = { executionId: a.executionId, taskId: a.taskId, stepId: a.stepId, attempt: a.attempt, region: a.region };
      const waiting = backlog === "unreachable" || ((backlog === "queued" || backlog === "no-pool") && (options.served?.(a.region, a.handler) ?? true));
      if (waiting) {
        postponed.set(`${ids.taskId}:${a.attempt}`, now + graceMs);
        log.debug({ ...ids, handler: a.handler, backlog }, "attempt overdue but possibly still queued; waiting");
        continue;
      }
      results.push(engineConcluded(ids, attemptTimedOut(a, graceMs, backlog === "drained" ? undefined : a)));
      log.warn({ ...ids, handler: a.handler, deadlineAt: a.deadlineAt, ...(backlog === "drained" ? {} : { backlog, workers: 0 }) }, "attempt timed out by the engine");
    }
    if (results.length === 0) return 0;
    const { committed } = await applyResults(options, results);
    options.relay.afterCommit(committed);
    return results.length;
  }

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await abortableDelay(options.intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      await sweepOnce().catch((err: unknown) => log.warn({ err: toError(err) }, "deadline sweep failed; trying again"));
    }
  })();

  return {
    sweepOnce,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
