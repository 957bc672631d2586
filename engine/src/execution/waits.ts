import type { ResumeInfo, WaitRequest } from "@flowmonkey/shared";
import { resolveStorable } from "../flows/resolve-storable.js";
import type { CompiledFlow } from "../flows/registry.js";
import type { ExecutionState } from "../scheduler/state.js";
import { dispatch, emit, failStep, failureOf, scopeOf, type AdvanceEnv } from "./advance.js";
import type { Changes } from "./changes.js";

/**
 * Parks a step on its wait: no task, no worker slot, nothing in memory. The token row written
 * with this change is what brings it back — a resume request, a matching event, or its timer.
 * `region`: where the attempt that parked ran (its results subject's): of the events a region's
 * worker emits, only that region's may resume it.
 */
export function parkStep(exec: ExecutionState, stepId: string, wait: WaitRequest, region: string, out: Changes, env: AdvanceEnv): void {
  const step = exec.steps[stepId]!;
  const since = env.now.toISOString();
  exec.steps[stepId] = { ...step, status: "waiting", wait: { ...wait, since }, deadlineAt: undefined, retryAt: undefined, lane: undefined, resumed: undefined };
  out.of(exec.id).waitsStarted.push({
    token: wait.resumeToken,
    executionId: exec.id,
    stepId,
    attempt: step.attempts,
    ...(exec.tenantId ? { tenantId: exec.tenantId } : {}),
    region,
    ...(wait.resumeOn ? { eventName: wait.resumeOn.event, ...(wait.resumeOn.filter ? { eventFilter: wait.resumeOn.filter } : {}) } : {}),
    ...(wait.waitUntil ? { waitUntil: wait.waitUntil } : {}),
  });
  emit(exec, out, env, "waiting", { stepId, attempt: step.attempts, wait });
}

export type ResumeCause = Omit<ResumeInfo, "waitedMs" | "waitReason">;

/**
 * Ends a step's wait: its token goes, the time it waited is recorded as paused, and the step
 * runs again as a new attempt whose task carries `resume` (the payload, or the event). A resume
 * is not a retry: it does not count against the step's retry policy.
 */
export async function resumeStep(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  cause: ResumeCause,
  out: Changes,
  env: AdvanceEnv,
  /** The FM_EVENTS sequence of the event that resumes it, when an event does. */
  eventSeq?: number,
): Promise<void> {
  const step = exec.steps[stepId]!;
  const wait = step.wait!;
  const waitedMs = Math.max(0, env.now.getTime() - Date.parse(wait.since));
  const effects = out.of(exec.id);
  effects.waitsEnded.push(wait.resumeToken);
  effects.taskPauses.push({ taskId: `${exec.id}/${stepId}`, attempt: step.attempts, pausedMs: waitedMs });
  const resumed: ResumeInfo = { ...cause, waitedMs, ...(wait.reason ? { waitReason: wait.reason } : {}) };
  exec.steps[stepId] = {
    ...step,
    status: "dispatched",
    wait: undefined,
    resumes: (step.resumes ?? 0) + 1,
    resumed,
    ...(eventSeq === undefined ? {} : { lastEventSeq: Math.max(eventSeq, step.lastEventSeq ?? 0) }),
  };
  exec.status = "running";
  emit(exec, out, env, "resumed", { stepId, resume: { reason: cause.reason, waitedMs } });
  try {
    // The same input the step had (re-resolved: earlier steps' outputs have not changed since).
    const input = await resolveStorable(flow.graph.steps.get(stepId)!.input, scopeOf(exec), `input of step ${stepId}`);
    dispatch(exec, flow, stepId, input, out, env);
  } catch (err) {
    failStep(exec, stepId, failureOf(err), out, env);
  }
}
