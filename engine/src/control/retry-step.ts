import { FmError, type ExecutionStatus } from "@flowmonkey/shared";
import { advance, dispatch, emit, failureOf, failStep, scopeOf } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import { startMap } from "../execution/map-step.js";
import { resolveStorable } from "../flows/resolve-storable.js";
import type { ApplyEnv } from "../results/apply-result.js";
import type { ExecutionState } from "../scheduler/state.js";
import { deadTaskId, markReplayed } from "../store/dead-tasks.js";
import { transition, type Committed } from "../store/transition.js";

/**
 * Runs a failed step again as a new attempt. A failed execution runs again: the steps its
 * failure cancelled become pending, so the flow continues past the step once it succeeds.
 * The caller has checked that the step is failed and the execution neither completed nor
 * cancelled. Shared by the operator's retry and the dead-letter replay.
 */
export async function rerunFailedStep(env: ApplyEnv, exec: ExecutionState, stepId: string, out: Changes): Promise<void> {
  const step = exec.steps[stepId]!;
  const flow = await env.registry.get(exec.flowId, exec.flowVersion);
  const envNow = { subjects: env.subjects, now: new Date(), breakers: env.breakers, rates: env.rates };
  if (exec.status === "failed") {
    exec.status = "running";
    exec.error = undefined;
    exec.completedAt = undefined;
    // Steps the failure cancelled get their turn again; their old attempts' late results stay ignored.
    for (const [id, s] of Object.entries(exec.steps)) {
      if (s.status === "cancelled") exec.steps[id] = { status: "pending", attempts: s.attempts };
    }
  }
  exec.steps[stepId] = { ...step, status: "pending", error: undefined, completedAt: undefined };
  emit(exec, out, envNow, "resumed", { stepId });
  out.updated.set(exec.id, exec);
  try {
    const def = flow.graph.steps.get(stepId)!;
    // A map step maps again: a new run over the list as it evaluates now.
    if (def.map) await startMap(exec, flow, stepId, out, envNow);
    else dispatch(exec, flow, stepId, await resolveStorable(def.input, scopeOf(exec), `input of step ${stepId}`), out, envNow);
  } catch (err) {
    failStep(exec, stepId, failureOf(err), out, envNow);
  }
  await advance(exec, flow, out, envNow);
}

/** `fm.api.executions.retryStep`: a failed step of a failed (or still running) execution runs again. */
export async function retryFailedStep(env: ApplyEnv, executionId: string, stepId: string): Promise<Committed<{ executionId: string; stepId: string; attempt: number; status: ExecutionStatus }>> {
  const out = new Changes();
  return transition(
    env.db,
    [executionId],
    async (executions, _out, q) => {
      const exec = executions.get(executionId);
      if (!exec) throw new FmError("EXECUTION_NOT_FOUND", `no execution ${executionId}`);
      if (exec.status === "completed" || exec.status === "cancelled") {
        throw new FmError("INVALID_STATE", `execution ${executionId} is ${exec.status}; only a failed step of a failed or running execution can be retried`);
      }
      const step = exec.steps[stepId];
      if (!step) throw new FmError("STEP_NOT_FOUND", `execution ${executionId} has no step ${stepId}`);
      if (step.status !== "failed") throw new FmError("INVALID_STATE", `step ${stepId} is ${step.status}; only a failed step can be retried`);
      // A dead letter of the attempt being retried is settled by this retry.
      await markReplayed(q, [deadTaskId(`${executionId}/${stepId}`, step.attempts)]);
      await rerunFailedStep(env, exec, stepId, out);
      return { executionId, stepId, attempt: step.attempts + 1, status: exec.status };
    },
    out,
    env.vault,
  );
}
