import { FmError, type AttemptView, type ExecutionSummary, type ExecutionView, type StepView } from "@flowmonkey/shared";
import type { CompiledFlow } from "../flows/registry.js";
import type { ExecutionState } from "../scheduler/state.js";

/** The public shape of an execution (fm.api.executions.get, GET /v1/executions/:id). */
export function executionView(
  exec: ExecutionState,
  flow: CompiledFlow,
  history?: ReadonlyMap<string, AttemptView[]>,
  /** The attempt a worker has started of a step (api/running-steps.ts): that attempt shows `running`. */
  attemptStarted?: (executionId: string, stepId: string) => number | undefined,
): ExecutionView {
  const steps: StepView[] = flow.graph.order.map((stepId) => {
    const s = exec.steps[stepId] ?? { status: "pending" as const, attempts: 0 };
    const running = s.status === "dispatched" && attemptStarted?.(exec.id, stepId) === s.attempts;
    return {
      stepId,
      handler: flow.graph.steps.get(stepId)!.handler,
      status: running ? "running" : s.status,
      attempts: s.attempts,
      ...(s.output === undefined ? {} : { output: s.output }),
      ...(s.error ? { error: s.error } : {}),
      ...(s.startedAt ? { startedAt: s.startedAt } : {}),
      ...(s.completedAt ? { completedAt: s.completedAt } : {}),
      ...(s.status === "waiting" && s.wait ? { wait: s.wait } : {}),
      ...(history ? { history: history.get(stepId) ?? [] } : {}),
      ...(flow.graph.steps.get(stepId)!.flow ? { flow: flow.graph.steps.get(stepId)!.flow } : {}),
      ...(s.child ? { childExecutionId: s.child } : {}),
      ...(s.map ? { map: { total: s.map.total, done: s.map.completed + s.map.failed, failed: s.map.failed, running: s.map.running } } : {}),
    };
  });
  return { ...executionSummary(exec), input: exec.input ?? null, context: exec.context, ...(exec.output === undefined ? {} : { output: exec.output }), steps };
}

export function executionSummary(exec: ExecutionState): ExecutionSummary {
  return {
    id: exec.id,
    flowId: exec.flowId,
    flowVersion: exec.flowVersion,
    status: exec.status,
    ...(exec.error ? { error: exec.error } : {}),
    ...(exec.tenantId ? { tenantId: exec.tenantId } : {}),
    region: exec.region,
    ...(exec.labels ? { labels: exec.labels } : {}),
    createdAt: exec.createdAt,
    updatedAt: exec.updatedAt,
    ...(exec.completedAt ? { completedAt: exec.completedAt } : {}),
    ...(exec.parent ? { parentExecutionId: exec.parent.executionId, parentStepId: exec.parent.stepId } : {}),
  };
}

/**
 * The view as it can be sent in one NATS message: a context too large for the reply (an
 * offloaded one can be many MiB) is left out and its size given instead; a view still too
 * large (huge outputs) is refused with PAYLOAD_TOO_LARGE rather than failing to send.
 */
export function sendableView(view: ExecutionView, maxBytes: number): ExecutionView {
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
  // Headroom for the reply's headers and framing.
  const budget = maxBytes - 4096;
  if (size(view) <= budget) return view;
  const trimmed: ExecutionView = { ...view, context: {}, contextOmitted: { bytes: size(view.context) } };
  if (size(trimmed) <= budget) return trimmed;
  throw new FmError("PAYLOAD_TOO_LARGE", `execution ${view.id} does not fit in one reply of ${maxBytes} bytes even without its context (large input or step outputs)`);
}
