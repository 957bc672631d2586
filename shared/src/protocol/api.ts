import { z } from "zod";
import { Failure, JsonObject, Timestamp } from "./messages/common.js";
import { ExecutionStatus, StepStatus } from "./messages/execution-event.js";
import { Token } from "./tokens.js";

/** Request and reply shapes of the `fm.api.*` endpoints (subjects are in subjects.ts). */

export const FlowPutReply = z.object({ flowId: Token, version: z.number().int().positive(), created: z.boolean() });
export type FlowPutReply = z.infer<typeof FlowPutReply>;

export const FlowSummary = z.object({
  flowId: Token,
  version: z.number().int().positive(),
  label: z.string().optional(),
  name: z.string().optional(),
  steps: z.number().int(),
  createdAt: Timestamp,
});
export type FlowSummary = z.infer<typeof FlowSummary>;
export const FlowListRequest = z.object({ flowId: Token.optional() }).strict();
export const FlowListReply = z.object({ flows: z.array(FlowSummary) });
export type FlowListReply = z.infer<typeof FlowListReply>;

export const StartReply = z.object({ executionId: Token, created: z.boolean() });
export type StartReply = z.infer<typeof StartReply>;

export const ExecutionRef = z.object({ executionId: Token }).strict();
export type ExecutionRef = z.infer<typeof ExecutionRef>;

export const StepView = z.object({
  stepId: Token,
  handler: Token,
  status: StepStatus,
  attempts: z.number().int().nonnegative(),
  output: z.unknown().optional(),
  error: Failure.optional(),
  startedAt: Timestamp.optional(),
  completedAt: Timestamp.optional(),
});
export type StepView = z.infer<typeof StepView>;

export const ExecutionView = z.object({
  id: Token,
  flowId: Token,
  flowVersion: z.number().int().positive(),
  status: ExecutionStatus,
  input: z.unknown(),
  context: JsonObject,
  output: z.unknown().optional(),
  error: Failure.optional(),
  tenantId: z.string().optional(),
  region: z.string(),
  labels: z.record(z.string(), z.string()).optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  completedAt: Timestamp.optional(),
  steps: z.array(StepView),
});
export type ExecutionView = z.infer<typeof ExecutionView>;

export const ExecutionListRequest = z
  .object({
    flowId: Token.optional(),
    status: ExecutionStatus.optional(),
    tenantId: z.string().optional(),
    limit: z.number().int().min(1).max(500).default(50),
    /** Opaque cursor from the previous page's `nextCursor`. */
    cursor: z.string().max(256).optional(),
  })
  .strict();
export type ExecutionListRequest = z.input<typeof ExecutionListRequest>;

export const ExecutionSummary = ExecutionView.omit({ steps: true, input: true, context: true, output: true });
export type ExecutionSummary = z.infer<typeof ExecutionSummary>;
export const ExecutionListReply = z.object({ executions: z.array(ExecutionSummary), nextCursor: z.string().optional() });
export type ExecutionListReply = z.infer<typeof ExecutionListReply>;

export const CancelReply = z.object({ executionId: Token, status: ExecutionStatus });
export type CancelReply = z.infer<typeof CancelReply>;

export const ResumeRequest = z.object({ resumeToken: z.string().min(1).max(256), payload: z.unknown().optional() }).strict();
export const ResumeReply = z.object({ executionId: Token, status: ExecutionStatus });

export const ErrorReplySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});
