import type { JetStreamClient } from "@nats-io/jetstream";
import { z } from "zod";
import { BlobRef, encode, FmError, isNoResponders, toError, type Logger, type Subjects } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { recordAttemptHeld, recordAttemptRegion } from "../store/task-routes.js";
import type { RegionRouter, TaskRoute } from "./router.js";
import { type CarriedTask, type CheckpointCarry, mayFindCheckpoint } from "../context/checkpoint-carry.js";
import type { ContextCarry } from "../context/context-carry.js";

/** The part of a task body routing reads and rewrites (the rest passes through untouched). */
const RoutedTask = z
  .object({
    taskId: z.string(),
    executionId: z.string(),
    attempt: z.number().int(),
    contextRef: BlobRef.optional(),
    vault: z.record(z.string(), z.unknown()).optional(),
    metadata: z.object({ region: z.string() }).passthrough(),
  })
  .passthrough();

export interface RoutedMessage {
  subject: string;
  body: unknown;
  msgId?: string | undefined;
  route: TaskRoute;
}

/**
 * Publishes one task to the first region of its route plan that takes it. The relay is where a
 * publish failure is seen, so failover lives here: no responders (the region's link is down) →
 * the next allowed region, with the task's subject and metadata.region rewritten and the attempt's
 * region recorded. Any other failure (a full queue, a timeout whose outcome is unknown) is not
 * re-targeted: the row is retried as it is. When no allowed region takes it, the attempt shows why
 * (REGION_UNAVAILABLE, RESIDENCY_UNKNOWN, CAPABILITY_UNAVAILABLE) and the relay tries again soon.
 * A task whose step requires capabilities is published to the handler's capability-qualified
 * pool that the router picks in that region (`<handler>~<cap>…`), which only workers with
 * every required capability pull from.
 */
export function createRoutedPublisher(o: {
  js: JetStreamClient;
  db: Db;
  router: RegionRouter;
  subjects: Subjects;
  log: Logger;
  carryCheckpoint?: CheckpointCarry;
  /** Copies an offloaded context into the bucket of the region a task is moved to (its workers read only theirs). */
  carryContext?: ContextCarry;
}) {
  const { js, db, router, subjects, log } = o;
  /** Attempts whose row shows a hold reason or another region: their row is updated when they go out. */
  const marked = new Set<string>();

  async function hold(taskId: string, attempt: number, error: FmError): Promise<never> {
    const key = `${taskId}:${attempt}`;
    if (!marked.has(key)) log.warn({ taskId, attempt, code: error.code, err: error }, "task held: no allowed region takes it yet");
    marked.add(key);
    await recordAttemptHeld(db, taskId, attempt, { code: error.code, message: error.message, retryable: true }).catch(() => undefined);
    throw error;
  }

  return async function publishRouted(m: RoutedMessage): Promise<void> {
    const target = subjects.parseTask(m.subject);
    const task = RoutedTask.parse(m.body);
    if (!target) throw new FmError("INTERNAL", `a routed outbox message has no task subject: ${m.subject}`);
    const key = `${task.taskId}:${task.attempt}`;
    const sealed = Object.keys(task.vault ?? {}).length > 0;
    const plan = router.plan({ region: target.region, handler: target.handler, sealed }, m.route);
    if (!plan.ok) return hold(task.taskId, task.attempt, plan.error);
    let lastError: unknown;
    for (const region of plan.regions) {
      // A step that requires capabilities goes to the pool of workers that offer them (chosen by
      // the plan), never to the handler's plain pool, which workers without them share.
      const pool = plan.pools.get(region) ?? [];
      const moved = region !== target.region;
      const subject = moved || pool.length > 0 ? subjects.task(region, target.handler, target.priority, pool) : m.subject;
      const contextRef = moved && task.contextRef && o.carryContext ? await o.carryContext(region, task.executionId, task.contextRef) : task.contextRef;
      const body = moved ? { ...task, ...(contextRef ? { contextRef } : {}), metadata: { ...task.metadata, region } } : m.body;
      // Recorded before the publish: once published, the result may be applied (and the attempt
      // no longer `dispatched`) before anything written afterwards.
      if (moved || marked.has(key)) await recordAttemptRegion(db, task.taskId, task.attempt, region);
      // A retry or resumed run finds the checkpoint an earlier run saved in another region.
      const carried = task as unknown as CarriedTask;
      if (o.carryCheckpoint && mayFindCheckpoint(carried)) await o.carryCheckpoint(region, carried);
      try {
        await js.publish(subject, encode(body), m.msgId ? { msgID: m.msgId } : undefined);
      } catch (err) {
        if (!isNoResponders(err)) throw err;
        router.markUnreachable(region);
        lastError = err;
        continue;
      }
      router.markReachable(region);
      if (moved) log.info({ taskId: task.taskId, attempt: task.attempt, from: target.region, region, capabilities: pool, tried: plan.regions }, "task routed to another region");
      else if (pool.length > 0 && log.isLevelEnabled("debug")) log.debug({ taskId: task.taskId, attempt: task.attempt, region, require: m.route.require, pool: subject }, "task routed to a capability pool");
      if (marked.delete(key)) {
        // A result applied meanwhile has already replaced the error (the update needs `dispatched`).
        await recordAttemptHeld(db, task.taskId, task.attempt, undefined).catch((err: unknown) => log.warn({ err: toError(err), taskId: task.taskId }, "could not clear the attempt's hold reason"));
      }
      return;
    }
    return hold(task.taskId, task.attempt, new FmError("REGION_UNAVAILABLE", `no allowed region is reachable (tried ${plan.regions.join(", ")})`, { cause: lastError }));
  };
}
