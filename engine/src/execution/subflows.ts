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
  const depth = (exec.parent?.depth ?? 0) + 1;
  if (depth > MAX_SUBFLOW_DEPTH) {
    exec.steps[stepId] = { ...step, attempts: attempt };
    failStep(exec, stepId, { code: "SUBFLOW_TOO_DEEP", message: `sub-flow ${def.flow} would be ${depth} levels deep; at most ${MAX_SUBFLOW_DEPTH} are allowed`, retryable: false }, out, env);
    return;
  }
  const dueAt = new Date(env.now.getTime() + delayMs);
  const child = childExecutionId(exec.id, stepId, attempt);
  // Only an explicit timeout bounds a sub-flow step (it then times out like any attempt, and its child is cancelled).
  const timeoutMs = def.timeoutMs ?? flow.definition.defaults?.timeoutMs;
  exec.steps[stepId] = {
    ...step,
    status: "dispatched",
    attempts: attempt,
    child,
    startedAt: step.startedAt ?? dueAt.toISOString(),
    deadlineAt: timeoutMs === undefined ? undefined : new Date(dueAt.getTime() + timeoutMs).toISOString(),
    retryAt: delayMs > 0 ? dueAt.toISOString() : undefined,
  };
  const effects = out.of(exec.id);
  effects.taskAttempts.push({ taskId: `${exec.id}/${stepId}`, attempt, executionId: exec.id, stepId, handler: SUBFLOW_HANDLER, region: exec.region, dispatchedAt: dueAt.toISOString() });
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
      parent: { executionId: exec.id, stepId, attempt, depth },
    },
  };
  if (delayMs > 0) effects.delayed.push({ notBefore: dueAt, messages: [message] });
  else effects.messages.push(message);
  emit(exec, out, env, "step.dispatched", { stepId, attempt, handler: SUBFLOW_HANDLER, region: exec.region });
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
    taskId: `${parent.executionId}/${parent.stepId}`,
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
