import { z } from "zod";
import { EXECUTION_EVENT_TYPES } from "../subjects.js";
import { Token } from "../tokens.js";
import { Failure, ResumeInfo, Timestamp } from "./common.js";
import { WaitRequest } from "./task-result.js";

export const ExecutionStatus = z.enum(["pending", "running", "waiting", "completed", "failed", "cancelled"]);
export type ExecutionStatus = z.infer<typeof ExecutionStatus>;
export const TERMINAL_STATUSES: readonly ExecutionStatus[] = ["completed", "failed", "cancelled"];

export const StepStatus = z.enum(["pending", "dispatched", "waiting", "completed", "failed", "skipped", "cancelled"]);
export type StepStatus = z.infer<typeof StepStatus>;

/** Body of `fm.exec.<flowId>.<executionId>.<event>`: execution lifecycle for dashboards. */
export const ExecutionEvent = z.object({
  type: z.enum(EXECUTION_EVENT_TYPES),
  executionId: Token,
  flowId: Token,
  flowVersion: z.number().int().positive(),
  status: ExecutionStatus,
  at: Timestamp,
  stepId: Token.optional(),
  attempt: z.number().int().positive().optional(),
  handler: z.string().optional(),
  region: z.string().optional(),
  output: z.unknown().optional(),
  /** Set instead of `output` when the event with it would be over the server's max_payload: read the output from the execution. */
  outputOmitted: z.object({ bytes: z.number().int().nonnegative() }).optional(),
  error: Failure.optional(),
  /** `waiting`: what the step waits for (its resume token included). */
  wait: WaitRequest.optional(),
  /** `resumed`: why. */
  resume: ResumeInfo.pick({ reason: true, waitedMs: true }).optional(),
});
export type ExecutionEvent = z.infer<typeof ExecutionEvent>;
