import type { AttemptView, ExecutionSummary, ExecutionView, StepView } from "@flowmonkey/shared";
import type { CompiledFlow } from "../flows/registry.js";
import type { ExecutionState } from "../scheduler/state.js";

/** The public shape of an execution (fm.api.executions.get, GET /v1/executions/:id). */
export function executionView(exec: ExecutionState, flow: CompiledFlow, history?: ReadonlyMap<string, AttemptView[]>): ExecutionView {
  const steps: StepView[] = flow.graph.order.map((stepId) => {
    const s = exec.steps[stepId] ?? { status: "pending" as const, attempts: 0 };
    return {
      stepId,
      handler: flow.graph.steps.get(stepId)!.handler,
      status: s.status,
      attempts: s.attempts,
      ...(s.output === undefined ? {} : { output: s.output }),
      ...(s.error ? { error: s.error } : {}),
      ...(s.startedAt ? { startedAt: s.startedAt } : {}),
      ...(s.completedAt ? { completedAt: s.completedAt } : {}),
      ...(s.status === "waiting" && s.wait ? { wait: s.wait } : {}),
      ...(history ? { history: history.get(stepId) ?? [] } : {}),
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
  };
}
