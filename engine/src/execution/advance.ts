import {
  canonicalCapabilities,
  SpanKind,
  startSpanFrom,
  toFmError,
  traceparentOf,
  type CompiledStep,
  type ExecutionEvent,
  type ExecutionEventType,
  type Failure,
  type Subjects,
  type Task,
} from "@flowmonkey/shared";
import { resolveTemplates, type ExpressionScope } from "../flows/expressions.js";
import { resolveStorable } from "../flows/resolve-storable.js";
import type { CompiledFlow } from "../flows/registry.js";
import { executionOutcome, liveStatus, readySteps } from "../scheduler/decide.js";
import { backoffOf, NO_RETRY } from "../scheduler/retry-policy.js";
import { isTerminalStep, type ExecutionState } from "../scheduler/state.js";
import type { CircuitBreakers } from "../scheduler/circuit-breakers.js";
import type { RateLimits } from "../scheduler/rate-limits.js";
import { sealRequestOf } from "../vault/seal-request.js";
import type { Changes, ExecutionEffects } from "./changes.js";
import type { OutboxMessage } from "../store/outbox.js";
import { taskRouteOf } from "../regions/task-route.js";
import { cancelChildOf, concludeParent, dispatchSubflow } from "./subflows.js";
import { startMap } from "./map-step.js";

export const DEFAULT_STEP_TIMEOUT_MS = 5 * 60_000;

export interface AdvanceEnv {
  subjects: Subjects;
  now: Date;
  /** Lanes whose circuit is open hold new tasks for a while (absent: never). */
  breakers?: CircuitBreakers | undefined;
  /** Tasks/s limits per lane and tenant: a task waits for its slot (absent: none). */
  rates?: RateLimits | undefined;
}

export const isTerminal = (s: ExecutionState["status"]) => s === "completed" || s === "failed" || s === "cancelled";

export function scopeOf(exec: ExecutionState): ExpressionScope {
  const steps: Record<string, unknown> = {};
  for (const [id, step] of Object.entries(exec.steps)) {
    if (step.status === "completed" || step.status === "skipped") steps[id] = step.output ?? null;
  }
  return { input: exec.input, context: exec.context, steps, execution: { id: exec.id, flowId: exec.flowId } };
}

export function emit(
  exec: ExecutionState,
  out: Changes,
  env: AdvanceEnv,
  type: ExecutionEventType,
  extra: Partial<ExecutionEvent> = {},
): ExecutionEvent {
  const event: ExecutionEvent = {
    type,
    executionId: exec.id,
    flowId: exec.flowId,
    flowVersion: exec.flowVersion,
    status: exec.status,
    at: env.now.toISOString(),
    ...extra,
  };
  out.of(exec.id).messages.push({ subject: env.subjects.exec(exec.flowId, exec.id, type), body: event });
  return event;
}

/**
 * Moves an execution forward as far as it can go now: skips steps whose `when` is false,
 * dispatches the ready ones, and completes or fails the execution when it is over.
 */
export async function advance(exec: ExecutionState, flow: CompiledFlow, out: Changes, env: AdvanceEnv): Promise<void> {
  if (isTerminal(exec.status)) return;
  for (;;) {
    const ready = readySteps(flow.graph, exec.steps);
    if (ready.length === 0) break;
    for (const stepId of ready) await startStep(exec, flow, stepId, out, env);
  }
  await finishIfOver(exec, flow, out, env);
  if (!isTerminal(exec.status)) exec.status = liveStatus(exec.steps);
}

async function startStep(exec: ExecutionState, flow: CompiledFlow, stepId: string, out: Changes, env: AdvanceEnv) {
  const def = flow.graph.steps.get(stepId)!;
  const scope = scopeOf(exec);
  let input: unknown;
  try {
    if (def.when !== undefined) {
      const go = typeof def.when === "boolean" ? def.when : await resolveTemplates(def.when, scope);
      if (!go) {
        exec.steps[stepId] = { status: "skipped", attempts: 0, output: null, completedAt: env.now.toISOString() };
        emit(exec, out, env, "step.skipped", { stepId });
        return;
      }
    }
    if (def.map) return await startMap(exec, flow, stepId, out, env);
    input = await resolveStorable(def.input, scope, `input of step ${stepId}`);
  } catch (err) {
    failStep(exec, stepId, failureOf(err), out, env);
    return;
  }
  dispatch(exec, flow, stepId, input, out, env);
}

/** Publishes the step's next attempt, now or (a retry) after `delayMs`. */
export function dispatch(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  input: unknown,
  out: Changes,
  env: AdvanceEnv,
  delayMs = 0,
): void {
  const def = flow.graph.steps.get(stepId)!;
  if (def.flow !== undefined) return dispatchSubflow(exec, flow, stepId, input, out, env, delayMs);
  const step = exec.steps[stepId]!;
  const attempt = step.attempts + 1;
  const lane = laneOf(exec, def);
  const dueAt = dueAtOf(exec, def, env, delayMs);
  const task = taskOf(exec, flow, stepId, attempt, input, dueAt);
  exec.steps[stepId] = {
    ...step,
    status: "dispatched",
    attempts: attempt,
    startedAt: step.startedAt ?? dueAt.toISOString(),
    // The engine's own clock on the attempt (the deadline sweep), independent of any worker.
    deadlineAt: new Date(dueAt.getTime() + task.config.timeoutMs).toISOString(),
    ...(dueAt > env.now ? { retryAt: dueAt.toISOString() } : { retryAt: undefined }),
  };
  const messages = queueTask(exec, def, task, dueAt, out, env);
  const effects = out.of(exec.id);
  if (exec.tenantId) {
    // Admitted (or queued behind the tenant's own tasks) when the transaction is written.
    exec.steps[stepId]!.lane = lane;
    effects.laneDispatches.push({ tenantId: exec.tenantId, lane, taskKey: `${task.taskId}:${attempt}`, messages, ...(dueAt > env.now ? { notBefore: dueAt } : {}) });
  } else sendWhenDue(messages, dueAt, out.of(exec.id), env);
  emit(exec, out, env, "step.dispatched", { stepId, attempt, handler: def.handler, region: task.metadata.region });
}

/**
 * When an attempt asked for `delayMs` from now goes out: an open circuit on its lane holds it
 * past its own delay (nothing is lost or burned), and a rate limit gives it the next free slot
 * after that.
 */
export function dueAtOf(exec: ExecutionState, def: { region?: string | undefined; handler: string }, env: AdvanceEnv, delayMs: number): Date {
  delayMs = Math.max(delayMs, env.breakers?.holdFor(laneOf(exec, def)) ?? 0);
  if (env.rates?.active) delayMs = env.rates.reserve(def.region ?? exec.region, def.handler, exec.tenantId, env.now.getTime() + delayMs) - env.now.getTime();
  return new Date(env.now.getTime() + delayMs);
}

/** Records a task's attempt row and traces it; returns the messages that publish it (the caller sends them). */
export function queueTask(exec: ExecutionState, def: CompiledStep, task: Task, dueAt: Date, out: Changes, env: AdvanceEnv): OutboxMessage[] {
  traceDispatch(exec, task);
  const { taskId, attempt, stepId, metadata: { region, priority } } = task;
  out.of(exec.id).taskAttempts.push({ taskId, attempt, executionId: exec.id, stepId, handler: def.handler, region, dispatchedAt: dueAt.toISOString() });
  return [{ subject: env.subjects.task(region, def.handler, priority), body: task, msgId: `${taskId}:${attempt}`, route: taskRouteOf(def), ...sealRequestOf(def.vault, task, env.subjects) }];
}

/** Messages published right after commit, or from the outbox when `dueAt` comes (a retry's backoff). */
export function sendWhenDue(messages: OutboxMessage[], dueAt: Date, effects: ExecutionEffects, env: AdvanceEnv): void {
  if (dueAt > env.now) effects.delayed.push({ notBefore: dueAt, messages });
  else effects.messages.push(...messages);
}

/** A dispatch span in the execution's trace; the task carries it, so the worker's run is its child. */
function traceDispatch(exec: ExecutionState, task: Task): void {
  if (!exec.traceparent) return;
  const { stepId, attempt, handler, metadata } = task;
  const span = startSpanFrom("flowmonkey.dispatch", exec.traceparent, {
    "flowmonkey.execution_id": exec.id,
    "flowmonkey.step_id": stepId,
    "flowmonkey.attempt": attempt,
    "flowmonkey.handler": handler.type,
    "flowmonkey.region": metadata.region,
  }, SpanKind.PRODUCER);
  const traceparent = traceparentOf(span);
  if (traceparent) task.metadata.traceparent = traceparent;
  span.end();
}

/** A step's lane, `<region>/<handler>`: what circuits, rate limits and tenant caps are kept per. */
export function laneOf(exec: ExecutionState, def: { region?: string | undefined; handler: string }): string {
  return `${def.region ?? exec.region}/${def.handler}`;
}

/** The task message of one attempt of a step. */
export function taskOf(exec: ExecutionState, flow: CompiledFlow, stepId: string, attempt: number, input: unknown, dispatchedAt: Date): Task {
  const def = flow.graph.steps.get(stepId)!;
  const defaults = flow.definition.defaults;
  const policy = def.retry ?? defaults?.retry ?? NO_RETRY;
  return {
    taskId: `${exec.id}/${stepId}`,
    executionId: exec.id,
    flowId: exec.flowId,
    flowVersion: exec.flowVersion,
    stepId,
    attempt,
    handler: { type: def.handler, ...(def.handlerVersion ? { version: def.handlerVersion } : {}) },
    input,
    context: exec.context,
    ...(exec.steps[stepId]?.resumed ? { resume: exec.steps[stepId].resumed } : {}),
    // The worker checks it too: a task that reaches a worker without them is refused, not run.
    ...(def.require?.length ? { require: canonicalCapabilities(def.require) } : {}),
    config: {
      timeoutMs: def.timeoutMs ?? defaults?.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS,
      retries: policy.maxAttempts - 1,
      backoff: backoffOf(policy),
    },
    vault: {},
    metadata: {
      region: def.region ?? exec.region,
      ...(exec.tenantId ? { tenantId: exec.tenantId } : {}),
      priority: def.priority ?? exec.priority,
      dispatchedAt: dispatchedAt.toISOString(),
    },
  };
}

/** A map step's run in flight ends with its step: items not ended are cancelled (their late results are ignored). */
function endMapRun(exec: ExecutionState, stepId: string, out: Changes): void {
  const step = exec.steps[stepId];
  if (step?.status !== "dispatched" || !step.map) return;
  const run = { executionId: exec.id, stepId, run: step.map.run };
  out.of(exec.id).mapRunsEnded.push(run);
  // Mapping a sub-flow: the items' children still running go too.
  if (step.map.children) out.of(exec.id).messages.push({ subject: "", body: { cancelChildrenOf: run }, cancelChildrenOf: run });
}

/** The step's current attempt no longer counts against its tenant's lane. Call before it leaves `dispatched`. */
export function releaseLane(exec: ExecutionState, stepId: string, out: Changes): void {
  const step = exec.steps[stepId];
  if (!exec.tenantId || step?.status !== "dispatched" || !step.lane) return;
  out.of(exec.id).laneReleases.push({ tenantId: exec.tenantId, lane: step.lane, taskKey: `${exec.id}/${stepId}:${step.attempts}` });
}

export function failStep(exec: ExecutionState, stepId: string, failure: Failure, out: Changes, env: AdvanceEnv): void {
  const step = exec.steps[stepId]!;
  // A sub-flow step failed other than by its child ending (a timeout): the child is cancelled.
  if (step.status === "dispatched" && failure.code !== "SUBFLOW_FAILED" && failure.code !== "CANCELLED") cancelChildOf(exec, stepId, out);
  endMapRun(exec, stepId, out);
  exec.steps[stepId] = { ...step, status: "failed", error: failure, completedAt: env.now.toISOString(), retryAt: undefined, deadlineAt: undefined, lane: undefined, resumed: undefined };
  emit(exec, out, env, "step.failed", { stepId, attempt: step.attempts, error: failure });
}

async function finishIfOver(exec: ExecutionState, flow: CompiledFlow, out: Changes, env: AdvanceEnv): Promise<void> {
  const outcome = executionOutcome(flow.graph, exec.steps);
  if (outcome.kind === "running") return;
  if (outcome.kind === "completed") {
    try {
      exec.output = await outputOf(exec, flow);
    } catch (err) {
      return finish(exec, "failed", out, env, { error: failureOf(err) });
    }
    return finish(exec, "completed", out, env, { output: exec.output });
  }
  finish(exec, "failed", out, env, { error: exec.steps[outcome.stepId]!.error ?? failureOf(new Error("step failed")) });
}

/** Ends an execution; steps still pending or in flight are marked cancelled (their late results are ignored). */
export function finish(
  exec: ExecutionState,
  status: "completed" | "failed" | "cancelled",
  out: Changes,
  env: AdvanceEnv,
  extra: { output?: unknown; error?: Failure } = {},
): void {
  exec.status = status;
  exec.completedAt = env.now.toISOString();
  if (extra.error) exec.error = extra.error;
  for (const [id, step] of Object.entries(exec.steps)) {
    if (!isTerminalStep(step)) {
      releaseLane(exec, id, out);
      if (step.status === "dispatched") cancelChildOf(exec, id, out);
      endMapRun(exec, id, out);
      if (step.status === "waiting" && step.wait) out.of(exec.id).waitsEnded.push(step.wait.resumeToken);
      exec.steps[id] = { ...step, status: "cancelled", completedAt: env.now.toISOString(), retryAt: undefined, deadlineAt: undefined, wait: undefined, resumed: undefined };
    }
  }
  emit(exec, out, env, status, {
    ...(extra.output === undefined ? {} : { output: extra.output }),
    ...(extra.error ? { error: extra.error } : {}),
  });
  concludeParent(exec, status, out, env, extra);
}

/** The flow's `output`, or by default the output of its last step(s): those nothing depends on. */
async function outputOf(exec: ExecutionState, flow: CompiledFlow): Promise<unknown> {
  if (flow.definition.output !== undefined) return resolveStorable(flow.definition.output, scopeOf(exec), "the flow's output");
  const sinks = flow.graph.order.filter((id) => (flow.graph.dependents.get(id) ?? []).length === 0);
  if (sinks.length === 1) return exec.steps[sinks[0]!]?.output ?? null;
  return Object.fromEntries(sinks.map((id) => [id, exec.steps[id]?.output ?? null]));
}

export function failureOf(err: unknown): Failure {
  const fm = toFmError(err);
  return { code: fm.code, message: fm.message, retryable: false };
}
