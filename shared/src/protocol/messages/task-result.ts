import { z } from "zod";
import { EventName, Region, Token } from "../tokens.js";
import { Failure, Timestamp } from "./common.js";

/** A change a handler made to the execution's context, applied with the step's result. */
export const ContextUpdate = z.discriminatedUnion("op", [
  z.object({ op: z.literal("set"), path: z.string().min(1), value: z.unknown() }),
  z.object({ op: z.literal("merge"), path: z.string().optional(), value: z.record(z.string(), z.unknown()) }),
  z.object({ op: z.literal("delete"), path: z.string().min(1) }),
]);
export type ContextUpdate = z.infer<typeof ContextUpdate>;

export const TaskMetrics = z.object({
  startedAt: Timestamp,
  completedAt: Timestamp,
  durationMs: z.number().nonnegative(),
  workerId: z.string().min(1),
  region: Region,
});
export type TaskMetrics = z.infer<typeof TaskMetrics>;

export const WaitRequest = z.object({
  resumeToken: z.string().min(1).max(256),
  waitUntil: Timestamp.optional(),
  resumeOn: z.object({ event: EventName, filter: z.string().optional() }).optional(),
});

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
