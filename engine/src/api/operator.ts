import type { JetStreamManager } from "@nats-io/jetstream";
import {
  FmError,
  readQueueSources,
  regionReach,
  statsOf,
  toError,
  type DlqPurgeRequest,
  type HealthReply,
  type Names,
  type QueueSource,
  type QueuesReply,
  type QueuesRequest,
} from "@flowmonkey/shared";
import type { z } from "zod";
import { retryFailedStep } from "../control/retry-step.js";
import { purgeDeadLetters } from "../dead-letters/purge.js";
import type { Relay } from "../outbox/relay.js";
import type { ApplyEnv } from "../results/apply-result.js";
import type { LanePauses } from "../control/lane-pauses.js";
import type { Db } from "../store/db.js";
import { pingStore } from "../store/counts.js";

/** fm.api.health: the store really answers (SELECT 1), not just that this process is up. */
export async function healthOf(db: Db, version: string): Promise<HealthReply> {
  const started = performance.now();
  try {
    await pingStore(db);
  } catch (thrown) {
    throw new FmError("UNAVAILABLE", `the engine's store does not answer: ${toError(thrown).message}`, { cause: thrown });
  }
  return { status: "ok", store: db.kind === "pglite" ? "pglite" : "postgres", storeLatencyMs: Math.round((performance.now() - started) * 100) / 100, version };
}

/**
 * fm.api.queues: the pool consumers of every domain's task stream (the hub's and each leaf
 * region's), read now, with the lanes operators paused. A domain that does not answer does not
 * fail the reply: its regions are listed as unreachable (and have no rows). Only when no
 * domain answers at all is it an error.
 */
export async function queuesOf(sources: readonly QueueSource[], names: Names, pauses: LanePauses, req: QueuesRequest): Promise<QueuesReply> {
  const [reads, paused] = await Promise.all([readQueueSources(sources, names), pauses.refresh()]);
  const failed = reads.flatMap((r) => ("error" in r ? [r.error] : []));
  if (failed.length === reads.length && failed[0]) {
    throw new FmError("UNAVAILABLE", `cannot read the task queues: ${failed[0].message}`, { cause: failed[0] });
  }
  const pausedLanes = new Set(paused.map((p) => p.lane));
  const wanted = (region: string, handler: string) => (!req.region || region === req.region) && (!req.handler || handler === req.handler);
  return {
    queues: statsOf(reads)
      .filter((q) => wanted(q.region, q.handler))
      .map((q) => ({ ...q, paused: pausedLanes.has(`${q.region}/${q.handler}`) })),
    paused: paused.filter((p) => {
      const [region = "", handler = ""] = p.lane.split("/");
      return wanted(region, handler);
    }),
    regions: regionReach(reads).filter((r) => !req.region || r.region === req.region),
  };
}

/** The operator endpoints' handlers (health, queues, pause/resume, DLQ purge, step retry), wired to the engine's parts. */
export function operatorHandlers(deps: {
  base: ApplyEnv;
  db: Db;
  /** The hub's JetStream (FM_DLQ). */
  jsm: JetStreamManager;
  /** Every domain's task stream, for the queue views. */
  queueSources: readonly QueueSource[];
  names: Names;
  pauses: LanePauses;
  relay: Relay;
  version: string;
}) {
  const { base, db, jsm, names, pauses, relay } = deps;
  return {
    health: () => healthOf(db, deps.version),
    queues: (req: QueuesRequest) => queuesOf(deps.queueSources, names, pauses, req),
    pauseQueue: async ({ region, handler, reason }: { region: string; handler: string; reason?: string | undefined }) => {
      const lane = `${region}/${handler}`;
      await pauses.pause(lane, reason);
      return { lane, paused: true };
    },
    resumeQueue: async ({ region, handler }: { region: string; handler: string }) => {
      const lane = `${region}/${handler}`;
      const { wasPaused, released } = await pauses.resume(lane);
      // The released tasks are due now: wake the relay instead of waiting for its next sweep.
      if (released > 0) relay.sweepAt(new Date());
      return { lane, paused: false, wasPaused, released };
    },
    purgeDeadTasks: (req: z.output<typeof DlqPurgeRequest>) => purgeDeadLetters(db, jsm, names, req),
    retryStep: async ({ executionId, stepId }: { executionId: string; stepId: string }) => {
      const committed = await retryFailedStep(base, executionId, stepId);
      relay.afterCommit(committed);
      return committed.value;
    },
  };
}
