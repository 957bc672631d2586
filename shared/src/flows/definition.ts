import { z } from "zod";
import { RetentionPeriod } from "../protocol/duration.js";
import { FlowScheduleDefinition } from "../protocol/schedules.js";
import { Priority, Region, Token } from "../protocol/tokens.js";

export const RetryPolicy = z
  .object({
    maxAttempts: z.number().int().min(1).max(100).default(1),
    backoff: z.enum(["exponential", "fixed"]).default("exponential"),
    initialDelayMs: z.number().int().nonnegative().default(5000),
    maxDelayMs: z.number().int().nonnegative().default(300_000),
    jitter: z.boolean().default(true),
  })
  .strict();
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/** `{% expr %}`: a JSONata expression the engine evaluates; anything else is a literal. */
export const EXPRESSION_PATTERN = /^\s*\{%([\s\S]*)%\}\s*$/;

export const StepDefinition = z
  .object({
    id: Token,
    /** The worker handler that runs the step; or `flow` instead, for a sub-flow step. */
    handler: Token.optional(),
    handlerVersion: z.string().max(64).optional(),
    /**
     * A sub-flow step: starts an execution of this flow with the step's input, parks without a
     * worker, and completes with its output (or fails with its error). Exactly one of `handler`
     * and `flow`.
     */
    flow: Token.optional(),
    /** The sub-flow's registry version; default: its latest when the step starts. */
    flowVersion: z.number().int().positive().optional(),
    description: z.string().max(2000).optional(),
    input: z.unknown().default({}),
    dependsOn: z.array(Token).max(256).optional(),
    when: z.union([z.boolean(), z.string().regex(EXPRESSION_PATTERN, "must be a {% expression %}")]).optional(),
    retry: RetryPolicy.optional(),
    timeoutMs: z.number().int().positive().max(7 * 24 * 3600_000).optional(),
    region: Region.optional(),
    residency: Token.optional(),
    priority: Priority.optional(),
    vault: z.array(z.string().min(1).max(256)).max(64).optional(),
    require: z.array(Token).max(32).optional(),
    /** `continue`: a failed step does not fail the execution; dependents run and see it failed. */
    onFailure: z.enum(["fail", "continue"]).default("fail"),
  })
  .strict()
  .superRefine((step, ctx) => {
    if ((step.handler === undefined) === (step.flow === undefined)) {
      ctx.addIssue({ code: "custom", path: ["handler"], message: "give exactly one of handler (a worker's handler) and flow (a sub-flow)" });
    }
    if (step.flowVersion !== undefined && step.flow === undefined) ctx.addIssue({ code: "custom", path: ["flowVersion"], message: "needs flow" });
  });
export type StepDefinition = z.infer<typeof StepDefinition>;

export const FlowDefinition = z
  .object({
    id: Token,
    /** The author's own label (e.g. 1.0.0); the registry assigns the numeric version. */
    version: z.union([z.string().max(64), z.number()]).transform(String).optional(),
    name: z.string().max(256).optional(),
    description: z.string().max(4000).optional(),
    steps: z.array(StepDefinition).min(1).max(500),
    output: z.unknown().optional(),
    defaults: z
      .object({
        timeoutMs: z.number().int().positive().optional(),
        region: Region.optional(),
        priority: Priority.optional(),
        retry: RetryPolicy.optional(),
      })
      .strict()
      .optional(),
    /**
     * How long this flow's ended executions are kept (e.g. "90d", "12h", "forever"); overrides
     * the engine's FM_RETENTION for executions started from this version.
     */
    retention: RetentionPeriod.optional(),
    /** Starts of this flow on a timer; pushing the flow replaces the schedules it declared before. */
    schedules: z
      .array(FlowScheduleDefinition)
      .max(32)
      .refine((list) => new Set(list.map((s) => s.id)).size === list.length, "schedule ids must be unique within the flow")
      .optional(),
  })
  .strict();
export type FlowDefinition = z.infer<typeof FlowDefinition>;
export type FlowDefinitionInput = z.input<typeof FlowDefinition>;
