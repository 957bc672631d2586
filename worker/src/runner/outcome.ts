import {
  type ContextUpdate,
  FmError,
  type SerializedFailure,
  serializeFailure,
  storableText,
  type Task,
  type TaskResult,
  toError,
} from "@flowmonkey/shared";
import { PauseSignal, Wait } from "../sdk/wait.js";

/** How a handler run ended, before it is turned into a result. */
export type Settlement =
  | { kind: "returned"; value: unknown }
  | { kind: "threw"; error: unknown }
  | { kind: "timedOut"; timeoutMs: number }
  /** Stopped from outside (worker shutdown): no result; the task goes back to the queue. */
  | { kind: "aborted"; reason: unknown };

export type Outcome = { kind: "result"; result: TaskResult } | { kind: "abandoned"; reason: Error };

export type TaskIds = Pick<Task, "taskId" | "executionId" | "stepId" | "attempt">;

export interface RunMeta {
  workerId: string;
  region: string;
  tier?: "small" | "medium" | "large";
  /** Epoch ms. */
  startedAt: number;
  completedAt: number;
}

// The TaskResult schema's limits: a longer field would make the result itself undecodable.
const MAX_CODE = 128;
const MAX_MESSAGE = 16_384;

/** Settlement → what to do with the task. The only place a handler's throw becomes a wire failure. */
export function toOutcome(ids: TaskIds, settlement: Settlement, meta: RunMeta, contextUpdates?: ContextUpdate[]): Outcome {
  const base = {
    taskId: ids.taskId,
    executionId: ids.executionId,
    stepId: ids.stepId,
    attempt: ids.attempt,
    ...(contextUpdates?.length ? { contextUpdates } : {}),
    metrics: metrics(meta),
  };
  switch (settlement.kind) {
    case "returned":
      if (settlement.value instanceof Wait) return { kind: "result", result: { ...base, outcome: "wait", wait: settlement.value.request } };
      return { kind: "result", result: { ...base, outcome: "success", output: settlement.value === undefined ? null : settlement.value } };
    case "threw":
      if (settlement.error instanceof PauseSignal) return { kind: "result", result: { ...base, outcome: "wait", wait: settlement.error.wait.request } };
      return { kind: "result", result: { ...base, outcome: "failure", failure: toFailure(settlement.error) } };
    case "timedOut": {
      const timeout = new FmError("TASK_TIMEOUT", `handler did not finish within ${settlement.timeoutMs} ms`);
      // A timed-out attempt's context changes are dropped: the handler never finished them.
      const { contextUpdates: _dropped, ...rest } = base;
      return { kind: "result", result: { ...rest, outcome: "failure", failure: toFailure(timeout) } };
    }
    case "aborted":
      return { kind: "abandoned", reason: toError(settlement.reason) };
  }
}

/** A result for a task the worker could not run at all (undecodable, unknown handler). */
export function errorResult(ids: TaskIds, error: unknown, meta: RunMeta): TaskResult {
  return {
    taskId: ids.taskId,
    executionId: ids.executionId,
    stepId: ids.stepId,
    attempt: ids.attempt,
    outcome: "error",
    failure: toFailure(error),
    metrics: metrics(meta),
  };
}

export function toFailure(error: unknown): SerializedFailure {
  const failure = serializeFailure(error);
  // An error's own text is kept readable rather than refused: a NUL in it becomes `\u0000`.
  failure.code = storableText(failure.code);
  failure.message = storableText(failure.message);
  if (failure.code.length > MAX_CODE) failure.code = failure.code.slice(0, MAX_CODE);
  if (failure.message.length > MAX_MESSAGE) failure.message = `${failure.message.slice(0, MAX_MESSAGE - 1)}…`;
  const after = failure.retryAfterMs;
  if (typeof after === "number" && Number.isFinite(after) && after >= 0) failure.retryAfterMs = Math.round(after);
  else delete failure.retryAfterMs;
  return failure;
}

function metrics(meta: RunMeta): TaskResult["metrics"] {
  return {
    startedAt: new Date(meta.startedAt).toISOString(),
    completedAt: new Date(meta.completedAt).toISOString(),
    durationMs: Math.max(0, meta.completedAt - meta.startedAt),
    workerId: meta.workerId,
    region: meta.region,
    ...(meta.tier ? { tier: meta.tier } : {}),
  };
}
