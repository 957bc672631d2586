import { createHash } from "node:crypto";
import { ENGINE_WORKER_ID, SUBFLOW_HANDLER, type Failure, type TaskResult } from "@flowmonkey/shared";
import type { CompiledFlow } from "../flows/registry.js";
import type { ExecutionState } from "../scheduler/state.js";
import type { OutboxMessage } from "../store/outbox.js";
import { emit, failStep, type AdvanceEnv } from "./advance.js";
import type { Changes } from "./changes.js";

/** Sub-flows nest at most this deep: a step of a depth-10 execution cannot start another. */
export const MAX_SUBFLOW_DEPTH = 10;

/**
 * The child execution's id, the same however often the attempt is decided (a redelivered
 * result, a retried transition): its start is then idempotent and its cancel finds it.
 */
export function childExecutionId(parentId: string, stepId: string, attempt: number): string {
  return `sub-${createHash("sha256").update(`${parentId}\u0000${stepId}\u0000${attempt}`).digest("hex").slice(0, 40)}`;
}

/**
 * A sub-flow step's next attempt: no task and no worker — the step is dispatched and an
 * internal outbox message has the engine start the child execution after commit (now, or when
 * a retry's backoff is over). The child's end concludes this attempt like a worker's result.
 */
export function dispatchSubflow(exec: ExecutionState, flow: CompiledFlow, stepId: string, input: unknown, out: Changes, env: AdvanceEnv, delayMs: number): void {
  const def = flow.graph.steps.get(stepId)!;
  const step = exec.steps[stepId]!;
  const attempt = step.attempts + 1;
  const tooDeep = depthRefusal(exec, def.flow!);
  if (tooDeep) {
    exec.steps[stepId] = { ...step, attempts: attempt };
    failStep(exec, stepId, tooDeep, out, env);
    return;
  }
  const started = startChild(exec, flow, stepId, { taskId: `${exec.id}/${stepId}`, key: stepId, attempt }, input, out, delayMs, env);
  exec.steps[stepId] = {
    ...step,
    status: "dispatched",
    attempts: attempt,
    child: started.child,
    startedAt: step.startedAt ?? started.dueAt.toISOString(),
    deadlineAt: started.deadlineAt,
    retryAt: delayMs > 0 ? started.dueAt.toISOString() : undefined,
  };
  emit(exec, out, env, "step.dispatched", { stepId, attempt, handler: SUBFLOW_HANDLER, region: exec.region });
}

/** SUBFLOW_TOO_DEEP when a child of `exec` would nest deeper than MAX_SUBFLOW_DEPTH, else undefined. */
export function depthRefusal(exec: ExecutionState, flowId: string): Failure | undefined {
  const depth = (exec.parent?.depth ?? 0) + 1;
  if (depth <= MAX_SUBFLOW_DEPTH) return undefined;
  return { code: "SUBFLOW_TOO_DEEP", message: `sub-flow ${flowId} would be ${depth} levels deep; at most ${MAX_SUBFLOW_DEPTH} are allowed`, retryable: false };
}

/**
 * One attempt of a sub-flow task — a sub-flow step's, or a map item's (`key` is then
 * `<stepId>#<run>.<index>`): its attempt row, and the internal message that starts its child
 * after commit (now, or when a retry's backoff is over). Answers the child's id, when the
 * attempt is due, and its deadline (only an explicit timeout bounds a sub-flow: it then times
 * out like any attempt, and its child is cancelled).
 */
export function startChild(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  task: { taskId: string; key: string; attempt: number },
  input: unknown,
  out: Changes,
  delayMs: number,
  env: AdvanceEnv,
): { child: string; dueAt: Date; deadlineAt: string | undefined } {
  const def = flow.graph.steps.get(stepId)!;
  const dueAt = new Date(env.now.getTime() + delayMs);
  const child = childExecutionId(exec.id, task.key, task.attempt);
  const timeoutMs = def.timeoutMs ?? flow.definition.defaults?.timeoutMs;
  const effects = out.of(exec.id);
  const { taskId, attempt } = task;
  effects.taskAttempts.push({ taskId, attempt, executionId: exec.id, stepId, handler: SUBFLOW_HANDLER, region: exec.region, dispatchedAt: dueAt.toISOString() });
  const message: OutboxMessage = {
    subject: "",
    body: { startChild: child },
    startChild: {
      flowId: def.flow!,
      ...(def.flowVersion === undefined ? {} : { flowVersion: def.flowVersion }),
      executionId: child,
      input,
      tenantId: exec.tenantId,
      priority: def.priority ?? exec.priority,
      parent: { executionId: exec.id, stepId, attempt, depth: (exec.parent?.depth ?? 0) + 1, ...(task.key === stepId ? {} : { taskId }) },
    },
  };
  if (delayMs > 0) effects.delayed.push({ notBefore: dueAt, messages: [message] });
  else effects.messages.push(message);
  return { child, dueAt, deadlineAt: timeoutMs === undefined ? undefined : new Date(dueAt.getTime() + timeoutMs).toISOString() };
}

/** The child of a step attempt that ended some other way (timed out, cancelled with its execution) is cancelled too. */
export function cancelChildOf(exec: ExecutionState, stepId: string, out: Changes): void {
  const child = exec.steps[stepId]?.child;
  if (child) out.of(exec.id).messages.push({ subject: "", body: { cancelChild: child }, cancelChild: child });
}

/**
 * A child execution ended: its parent's step attempt is concluded with its output (completed)
 * or a failure (failed: SUBFLOW_FAILED, retryable per the step's retry policy; cancelled:
 * CANCELLED) — applied by the engine like a worker's result, after this commit.
 */
export function concludeParent(exec: ExecutionState, status: "completed" | "failed" | "cancelled", out: Changes, env: AdvanceEnv, extra: { output?: unknown; error?: Failure }): void {
  const parent = exec.parent;
  if (!parent) return;
  const base = {
    // A map item's child concludes the item's task; a sub-flow step's, the step's.
    taskId: parent.taskId ?? `${parent.executionId}/${parent.stepId}`,
    executionId: parent.executionId,
    stepId: parent.stepId,
    attempt: parent.attempt,
    metrics: {
      startedAt: exec.createdAt,
      completedAt: env.now.toISOString(),
      durationMs: Math.max(0, env.now.getTime() - Date.parse(exec.createdAt)),
      workerId: ENGINE_WORKER_ID,
      region: exec.region,
    },
  };
  const why = extra.error ? `: ${extra.error.code}: ${extra.error.message}` : "";
  const result: TaskResult =
    status === "completed"
      ? { ...base, outcome: "success", output: extra.output ?? null }
      : {
          ...base,
          outcome: "failure",
          failure: {
            code: status === "cancelled" ? "CANCELLED" : "SUBFLOW_FAILED",
            message: `sub-flow ${exec.flowId} (execution ${exec.id}) ${status}${why}`,
            retryable: status === "failed",
          },
        };
  out.of(exec.id).messages.push({ subject: "", body: result, conclude: true });
}
