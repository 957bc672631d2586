import { z } from "zod";
import { Priority, Region, Token } from "../tokens.js";
import { BlobRef, JsonObject, ResumeInfo, Timestamp } from "./common.js";

export const BackoffConfig = z.object({
  kind: z.enum(["exponential", "fixed"]),
  initialDelayMs: z.number().int().nonnegative(),
  maxDelayMs: z.number().int().nonnegative(),
  jitter: z.boolean(),
});
export type BackoffConfig = z.infer<typeof BackoffConfig>;

/** Body of `fm.tasks.<region>.<handler>.<priority>`: one attempt of one step. */
export const Task = z.object({
  taskId: z.string().min(1),
  executionId: Token,
  flowId: Token,
  flowVersion: z.number().int().positive(),
  stepId: Token,
  attempt: z.number().int().positive(),
  handler: z.object({ type: Token, version: z.string().optional() }),
  input: z.unknown(),
  /** The execution's context, inline; empty when `contextRef` points at a large one in the blob bucket. */
  context: JsonObject,
  contextRef: BlobRef.optional(),
  config: z.object({
    timeoutMs: z.number().int().positive(),
    /** Attempts after the first one that the engine may schedule for a retryable failure. */
    retries: z.number().int().nonnegative(),
    backoff: BackoffConfig,
  }),
  /**
   * A map step's item (docs/PROTOCOL.md, Map steps): which element of the list this task runs,
   * in which run of the step. Each item has its own checkpoint; `taskId` tells items apart.
   */
  item: z.object({ index: z.number().int().nonnegative(), run: z.number().int().positive() }).optional(),
  /** Set on the run after a wait: why the step runs again and the payload it was resumed with. */
  resume: ResumeInfo.optional(),
  /**
   * The capabilities the step requires (`require` in the flow): the engine routes the task to a
   * pool of workers that offer them, and a worker that does not refuses it (CAPABILITY_UNAVAILABLE).
   */
  require: z.array(Token).max(32).optional(),
  /** Sealed secrets, only the keys the step asked for. */
  vault: z.record(z.string(), z.string()).default({}),
  metadata: z.object({
    region: Region,
    tenantId: z.string().optional(),
    priority: Priority,
    dispatchedAt: Timestamp,
    traceparent: z.string().optional(),
  }),
});
export type Task = z.infer<typeof Task>;
export type TaskInput = z.input<typeof Task>;
