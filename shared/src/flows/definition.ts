import { z } from "zod";
import { RetentionPeriod } from "../protocol/duration.js";
import { FlowScheduleDefinition } from "../protocol/schedules.js";
import { Priority, Region, Token } from "../protocol/tokens.js";

export const RetryPolicy = z
  .object({
    maxAttempts: z.number().int().min(1).max(100).default(1).describe("attempts in all, the first included (1: no retry)"),
    backoff: z.enum(["exponential", "fixed"]).default("exponential").describe("how the delay grows between attempts: doubling from initialDelayMs, or always initialDelayMs"),
    initialDelayMs: z.number().int().nonnegative().default(5000).describe("delay before the second attempt, in ms"),
    maxDelayMs: z.number().int().nonnegative().default(300_000).describe("longest delay between attempts, in ms"),
    jitter: z.boolean().default(true).describe("pick each delay at random between half and all of it, so a burst of failures does not retry in lockstep"),
  })
  .strict();
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/** `{% expr %}`: a JSONata expression the engine evaluates; anything else is a literal. */
export const EXPRESSION_PATTERN = /^\s*\{%([\s\S]*)%\}\s*$/;

/** A map step: its handler runs once per item of a list known only at run time. */
export const MapDefinition = z
  .object({
    items: z
      .string()
      .regex(EXPRESSION_PATTERN, "must be a {% expression %}")
      .describe("a {% expression %} giving the list (an array) to map over; the step's input sees each element as {% item %} and its position as {% index %}"),
    concurrency: z.number().int().min(1).max(1000).default(10).describe("items in flight at most at a time"),
    maxItems: z.number().int().min(1).max(100_000).default(10_000).describe("a longer list fails the step (MAP_ITEMS_INVALID) before any item runs"),
    tolerateFailures: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe("items that may fail (after their retries) without failing the step; their slots in the output are null"),
  })
  .strict();
export type MapDefinition = z.infer<typeof MapDefinition>;

export const StepDefinition = z
  .object({
    id: Token.describe("the step's id, unique in the flow; expressions read its output as `steps.<id>`"),
    /** The worker handler that runs the step; or `flow` instead, for a sub-flow step. */
    handler: Token.optional().describe("the handler type a worker runs for this step (built-ins: docs/HANDLERS.md); exactly one of handler and flow"),
    handlerVersion: z.string().max(64).optional().describe("the handler version the task asks for (for a sandboxed handler: which published bundle)"),
    /**
     * A sub-flow step: starts an execution of this flow with the step's input, parks without a
     * worker, and completes with its output (or fails with its error). Exactly one of `handler`
     * and `flow`.
     */
    flow: Token.optional().describe("a sub-flow step: runs this flow as a child execution with the step's input; its output is the step's (docs/PROTOCOL.md, Sub-flows)"),
    /** The sub-flow's registry version; default: its latest when the step starts. */
    flowVersion: z.number().int().positive().optional().describe("the sub-flow's registry version (default: its latest when the step starts)"),
    description: z.string().max(2000).optional().describe("free text for people reading the flow"),
    map: MapDefinition.optional().describe("run the handler (or the sub-flow) once per item of a list, each item its own task with its own retries; the step's output is the items' outputs in order (docs/PROTOCOL.md, Map steps). See Map keys"),
    input: z.unknown().default({}).describe("the handler's input: any JSON; strings of the form {% expression %} are JSONata over input, context, steps and execution"),
    dependsOn: z.array(Token).max(256).optional().describe("steps that must be settled first (default: the step listed before it; [] for none, i.e. parallel)"),
    when: z
      .union([z.boolean(), z.string().regex(EXPRESSION_PATTERN, "must be a {% expression %}")])
      .optional()
      .describe("run the step only when true (a boolean or a {% expression %}); otherwise it is skipped"),
    retry: RetryPolicy.optional().describe("attempts and backoff when the handler fails retryably (default: defaults.retry, else one attempt)"),
    timeoutMs: z.number().int().positive().max(7 * 24 * 3600_000).optional().describe("how long one attempt may take before the engine times it out (default: defaults.timeoutMs, else 5 minutes)"),
    region: Region.optional().describe("the region whose workers run it (default: defaults.region, else the execution's region)"),
    residency: Token.optional().describe("a residency rule name (FM_RESIDENCY_RULES): the regions its data may be processed in (docs/REGIONS.md)"),
    priority: Priority.optional().describe("high, normal or low: which lane of its pool the task waits in (default: defaults.priority, else the execution's)"),
    vault: z.array(z.string().min(1).max(256)).max(64).optional().describe("secret keys sealed into the task for the handler (ctx.secrets); the pool needs a vault key"),
    require: z.array(Token).max(32).optional().describe("capabilities the worker must offer (e.g. gpu): the task goes to that capability pool"),
    /** `continue`: a failed step does not fail the execution; dependents run and see it failed. */
    onFailure: z.enum(["fail", "continue"]).default("fail").describe("fail: a failed step fails the execution; continue: dependents run and see it failed"),
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
    id: Token.describe("the flow's id: the last token of the subject that starts it (README, the tour)"),
    /** The author's own label (e.g. 1.0.0); the registry assigns the numeric version. */
    version: z
      .union([z.string().max(64), z.number()])
      .transform(String)
      .optional()
      .describe("your own label (e.g. 1.0.0), kept with the version; the registry numbers versions itself (1, 2, 3 …, a new one whenever the content changes) and starts use the latest"),
    name: z.string().max(256).optional().describe("a display name"),
    description: z.string().max(4000).optional().describe("free text for people reading the flow"),
    example: z.unknown().optional().describe("an example input: the dashboard's start form offers it when the flow is picked (any JSON)"),
    steps: z.array(StepDefinition).min(1).max(500).describe("the steps; see Step keys"),
    output: z.unknown().optional().describe("the execution's output: any JSON with {% expressions %} (default: the output of the last step, or of every step nothing depends on)"),
    defaults: z
      .object({
        timeoutMs: z.number().int().positive().optional().describe("every step's attempt timeout unless the step sets timeoutMs (default 5 minutes)"),
        region: Region.optional().describe("the region of every step (and of the execution) unless the step or the start says otherwise"),
        priority: Priority.optional().describe("the priority of every execution and step unless the start or the step says otherwise"),
        retry: RetryPolicy.optional().describe("every step's retry policy unless the step sets retry"),
      })
      .strict()
      .optional()
      .describe("defaults for every step: timeoutMs, region, priority, retry"),
    /**
     * How long this flow's ended executions are kept (e.g. "90d", "12h", "forever"); overrides
     * the engine's FM_RETENTION for executions started from this version.
     */
    retention: RetentionPeriod.optional().describe('how long its ended executions are kept ("90d", "12h", "forever"), instead of the engine\'s FM_RETENTION'),
    /** Starts of this flow on a timer; pushing the flow replaces the schedules it declared before. */
    schedules: z
      .array(FlowScheduleDefinition)
      .max(32)
      .refine((list) => new Set(list.map((s) => s.id)).size === list.length, "schedule ids must be unique within the flow")
      .optional()
      .describe("starts of this flow on a timer; see Schedule keys"),
  })
  .strict();
export type FlowDefinition = z.infer<typeof FlowDefinition>;
export type FlowDefinitionInput = z.input<typeof FlowDefinition>;
