import { z } from "zod";
import { EventName, Region, Token } from "../tokens.js";
import { Failure, ResumeToken, Timestamp } from "./common.js";

/** A change a handler made to the execution's context, applied with the step's result. */
export const ContextUpdate = z.discriminatedUnion("op", [
  z.object({ op: z.literal("set"), path: z.string().min(1), value: z.unknown() }),
  z.object({ op: z.literal("merge"), path: z.string().optional(), value: z.record(z.string(), z.unknown()) }),
  z.object({ op: z.literal("delete"), path: z.string().min(1) }),
]);
export type ContextUpdate = z.infer<typeof ContextUpdate>;

/** `metrics.workerId` of a result the engine concluded itself (a timeout, exhausted deliveries, a sealing failure): no worker ran it. */
export const ENGINE_WORKER_ID = "engine";

export const TaskMetrics = z.object({
  startedAt: Timestamp,
  completedAt: Timestamp,
  durationMs: z.number().nonnegative(),
  workerId: z.string().min(1),
  region: Region,
  /** The worker pool's size class (configured memory/CPU), for usage records. */
  tier: z.enum(["small", "medium", "large"]).optional(),
});
export type TaskMetrics = z.infer<typeof TaskMetrics>;

/** What a waiting step waits for: its token to be resumed, a matching event, or (then timing out) `waitUntil`. */
export const WaitRequest = z.object({
  resumeToken: ResumeToken,
  waitUntil: Timestamp.optional(),
  /** `filter`: a JSONata expression over `{ name, data, executionId, stepId, at }`; the event resumes the step when it is truthy. */
  resumeOn: z.object({ event: EventName, filter: z.string().max(4096).optional() }).optional(),
  /** Why it waits (shown to operators; `ctx.pause.wait` sets it). */
  reason: z.string().max(512).optional(),
});
export type WaitRequest = z.infer<typeof WaitRequest>;

const ResultBase = z.object({
  taskId: z.string().min(1),
  executionId: Token,
  stepId: Token,
  attempt: z.number().int().positive(),
  contextUpdates: z.array(ContextUpdate).max(1000).optional(),
  metrics: TaskMetrics,
  logs: z.array(z.object({ level: z.string(), msg: z.string(), at: Timestamp })).max(200).optional(),
});

/**
 * Body of `fm.results.<region>`. `failure` is the handler saying no; `error` is the worker
 * failing to run it at all (undecodable task, unknown handler).
 */
export const TaskResult = z.discriminatedUnion("outcome", [
  ResultBase.extend({ outcome: z.literal("success"), output: z.unknown() }),
  ResultBase.extend({ outcome: z.literal("failure"), failure: Failure }),
  ResultBase.extend({ outcome: z.literal("wait"), wait: WaitRequest }),
  ResultBase.extend({ outcome: z.literal("error"), failure: Failure }),
]);
export type TaskResult = z.infer<typeof TaskResult>;
export type TaskOutcome = TaskResult["outcome"];
