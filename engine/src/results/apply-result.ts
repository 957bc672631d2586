import { ENGINE_WORKER_ID } from "@flowmonkey/shared";
import type { Failure, Subjects, Task, TaskResult, WaitRequest } from "@flowmonkey/shared";
import { declareDeadTask } from "../dead-letters/declare.js";
import { advance, dispatch, emit, failStep, failureOf, isTerminal, laneOf, releaseLane, scopeOf, taskOf, type AdvanceEnv } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import { applyContextUpdates } from "../execution/context-updates.js";
import { checkExpression } from "../flows/expressions.js";
import { resolveStorable } from "../flows/resolve-storable.js";
import { parkStep } from "../execution/waits.js";
import { childExecutionId } from "../execution/subflows.js";
import { applyItemOutcome, itemOfTaskId, itemTask, MapItemReader, type ItemOutcome } from "../execution/map-step.js";
import type { MapItemRow } from "../store/map-items.js";
import { tokensInUse } from "../store/wait-tokens.js";
import { attemptRegionsOf } from "../store/tasks.js";
import { taskIdOf } from "./read-result.js";
import type { FlowRegistry } from "../flows/registry.js";
import { isMisrouted, nextRetryDelayMs, NO_RETRY, reroutesAgain } from "../scheduler/retry-policy.js";
import type { CircuitBreakers } from "../scheduler/circuit-breakers.js";
import type { RateLimits } from "../scheduler/rate-limits.js";
import type { ExecutionState } from "../scheduler/state.js";
import { hasSqlState, type Db, type Queryable } from "../store/db.js";
import type { Rejection } from "../store/rejections.js";
import { ExecutionConflictError, transition, transitionOptimistically, type Committed } from "../store/transition.js";
import type { Vault } from "../vault/vault.js";
import type { ParkedEventWait } from "../waits/event-catch-up.js";

/**
 * `ignored`: a duplicate, or a late result of an older attempt or a finished execution (the
 * normal fate of a second run). `rejected`: a result that cannot be from the attempt the
 * engine dispatched (an attempt never dispatched, a step the execution lacks, another region
 * than the attempt went to) — recorded as a RESULT_MISMATCH rejection.
 */
export type ApplyOutcome = "applied" | "ignored" | "unknown-execution" | "rejected";

/**
 * A result to apply: one a worker sent, or one the engine concludes itself (an attempt timed
 * out, or its deliveries ran out: then `deadLetter` carries the task as it was queued).
 */
export type ResultToApply = TaskResult & {
  deadLetter?: { task: Task; deliveries: number };
  /**
   * Read off `fm.results.<region>` (read-result.ts): its region is checked against the region
   * the attempt was sent to. The engine's own conclusions applied directly (timeouts, exhausted
   * deliveries) are not; its vault refusals travel over NATS and are, like any other result.
   */
  fromWire?: boolean;
};

/** The result the engine records for an attempt no worker answered for (timed out, deliveries ran out). */
export function engineConcluded(
  attempt: { taskId: string; executionId: string; stepId: string; attempt: number; region: string },
  failure: Failure,
): TaskResult {
  const at = new Date().toISOString();
  const { taskId, executionId, stepId, region } = attempt;
  return {
    taskId,
    executionId,
    stepId,
    attempt: attempt.attempt,
    outcome: "error",
    failure,
    metrics: { startedAt: at, completedAt: at, durationMs: 0, workerId: ENGINE_WORKER_ID, region },
  };
}

export interface ApplyEnv {
  db: Db;
  registry: FlowRegistry;
  subjects: Subjects;
  /** Judges each lane's health from the results applied; absent in tools and tests that do not care. */
  breakers?: CircuitBreakers | undefined;
  rates?: RateLimits | undefined;
  vault?: Vault | undefined;
}

/**
 * Applies a batch of task results in one transaction. A result is applied once: only the
 * attempt a step is currently waiting for counts; duplicates and late results of older
 * attempts (or of finished executions) are recorded as ignored.
 */
export async function applyResults(
  env: ApplyEnv,
  results: ResultToApply[],
  rejections: Rejection[] = [],
): Promise<{ outcomes: ApplyOutcome[]; committed: Committed<ApplyOutcome[]>; parked: ParkedEventWait[] }> {
  // Optimistic first (one statement when the results need nothing else); an execution that
  // changed meanwhile (another batch, a replica, a timeout) means deciding again on fresh
  // state; after OPTIMISTIC_TRIES conflicts the locked path decides under the row locks.
  // Regions are first assumed (the write checks them); a result from another region than its
  // attempt's makes the batch decide again with them read, and that result is rejected.
  let assumeRegions = true;
  for (let tries = 1; ; tries++) {
    const optimistic = tries <= OPTIMISTIC_TRIES;
    try {
      return await applyResultsOnce(env, results, rejections, optimistic, optimistic && assumeRegions);
    } catch (err) {
      if (isRegionMismatch(err)) {
        assumeRegions = false;
        continue;
      }
      if (!(err instanceof ExecutionConflictError) || !optimistic) throw err;
    }
  }
}

/** fm_check_attempt_regions (migration 0016): an assumed region was not the attempt's. */
const isRegionMismatch = (err: unknown) => hasSqlState(err, "FMR01");

/** Whether a current attempt's result came from the region its task was sent to: why not, or undefined. */
type RegionCheck = (result: ResultToApply) => string | undefined;

/** Conflicts an optimistic result batch may meet before it takes the row locks instead. */
const OPTIMISTIC_TRIES = 3;

async function applyResultsOnce(
  env: ApplyEnv,
  results: ResultToApply[],
  rejections: Rejection[],
  optimistic: boolean,
  /** Check the attempts' regions in the write instead of reading them first (one round trip less). */
  assumeRegions: boolean,
): Promise<{ outcomes: ApplyOutcome[]; committed: Committed<ApplyOutcome[]>; parked: ParkedEventWait[] }> {
  const out = new Changes();
  out.rejections.push(...rejections);
  // Read alongside the executions (on other pool connections), not after them: a round trip
  // less per batch. Both are facts no transition changes under a result: the attempt's region
  // (set before its task is published) and whether a resume token is taken (unique anyway).
  const regionsRead = assumeRegions ? Promise.resolve(undefined) : attemptRegionsOf(env.db, results.filter((r) => r.fromWire));
  const tokensRead = tokensInUse(env.db, results.flatMap((r) => (r.outcome === "wait" ? [r.wait.resumeToken] : [])));
  // Awaited inside decide; a failure before that must not go unhandled.
  regionsRead.catch(() => undefined);
  tokensRead.catch(() => undefined);
  const committed = await (optimistic ? transitionOptimistically : transition)(
    env.db,
    results.map((r) => r.executionId),
    async (executions, _out, q) => {
      const waits = { taken: await tokensRead };
      const known = await regionsRead;
      const regions: RegionCheck = known
        ? (r) => regionMismatch(r, known)
        : (r) => void out.assumedRegions.push({ taskId: r.taskId, attempt: r.attempt, region: r.metrics.region });
      const items = results.map((r) => itemOfTaskId(r.taskId, r.executionId, r.stepId));
      const reader = new MapItemReader(q);
      if (items.some(Boolean)) await reader.prefetch(itemRunsOf(results, items, executions));
      const outcomes: ApplyOutcome[] = [];
      for (const [i, result] of results.entries()) {
        const exec = executions.get(result.executionId);
        if (!exec) {
          out.rejections.push({
            subject: env.subjects.results(result.metrics.region),
            code: "EXECUTION_NOT_FOUND",
            reason: `result of task ${result.taskId} attempt ${result.attempt} names unknown execution ${result.executionId}`,
          });
          outcomes.push("unknown-execution");
          continue;
        }
        const item = items[i];
        const mismatch = item ? itemMismatch(exec, result, item, await reader.get(exec.id, result.stepId, item.run, item.index), regions) : attemptMismatch(exec, result, regions);
        if (mismatch) {
          out.rejections.push({
            subject: env.subjects.results(result.metrics.region),
            code: "RESULT_MISMATCH",
            reason: `result of task ${result.taskId} attempt ${result.attempt} from worker ${result.metrics.workerId}: ${mismatch}`,
          });
          outcomes.push("rejected");
          continue;
        }
        const outcome = item ? await applyItemResult(env, exec, result, item, reader, q, out) : await applyOne(env, exec, result, out, waits);
        if (outcome === "applied") out.updated.set(exec.id, exec);
        outcomes.push(outcome);
      }
      return outcomes;
    },
    out,
    env.vault,
  );
  return { outcomes: committed.value, committed, parked: parkedOnEvents(out) };
}

/** The result is for the attempt the step is waiting on now. */
function isCurrent(exec: ExecutionState | undefined, result: ResultToApply): boolean {
  const step = exec?.steps[result.stepId];
  return exec !== undefined && !isTerminal(exec.status) && step?.status === "dispatched" && step.attempts === result.attempt;
}

/**
 * Why a result cannot be from an attempt the engine dispatched, or undefined. Late results of
 * older attempts are not mismatches (they are ignored). The region of a result off the wire
 * for the current attempt is checked against the attempt's row, which routing updates when it
 * sends the task to another region than planned (failover, least-busy).
 */
function attemptMismatch(exec: ExecutionState, result: ResultToApply, regions: RegionCheck): string | undefined {
  if (result.taskId !== taskIdOf(result.executionId, result.stepId)) return `taskId is not ${taskIdOf(result.executionId, result.stepId)}`;
  const step = exec.steps[result.stepId];
  if (!step) return `execution ${exec.id} has no step ${result.stepId}`;
  if (step.map) return `step ${result.stepId} is a map step: its tasks are its items, each with an item task id`;
  if (result.attempt > step.attempts) return `step ${result.stepId} has had ${step.attempts} attempt(s); attempt ${result.attempt} was never dispatched`;
  if (!result.fromWire || !isCurrent(exec, result)) return undefined;
  return regions(result);
}

/** The region a current attempt's result came from is not the one its task was sent to. */
function regionMismatch(result: ResultToApply, regions: Map<string, string>): string | undefined {
  const region = regions.get(`${result.taskId}:${result.attempt}`);
  if (region === undefined) return `no dispatched attempt ${result.attempt} of task ${result.taskId} is on record`;
  if (region !== result.metrics.region) return `attempt ${result.attempt} was sent to region ${region}, but the result came from region ${result.metrics.region}`;
  return undefined;
}

/** attemptMismatch for a map item's result: the item must exist and have had that attempt. */
function itemMismatch(exec: ExecutionState, result: ResultToApply, item: { run: number; index: number }, row: MapItemRow | undefined, regions: RegionCheck): string | undefined {
  const step = exec.steps[result.stepId];
  if (!step?.map) return `execution ${exec.id} has no map step ${result.stepId}`;
  if (item.run > step.attempts) return `map step ${result.stepId} has had ${step.attempts} run(s); run ${item.run} never started`;
  if (item.run !== step.map.run) return undefined;
  if (!row) return `run ${item.run} of map step ${result.stepId} has no item ${item.index}`;
  if (result.attempt > row.attempts) return `item ${item.index} has had ${row.attempts} attempt(s); attempt ${result.attempt} was never dispatched`;
  if (!result.fromWire || isTerminal(exec.status) || step.status !== "dispatched" || row.status !== "dispatched" || row.attempts !== result.attempt) return undefined;
  return regions(result);
}

/** The map runs a batch's item results belong to, with the item indexes each names (one read per run). */
function itemRunsOf(results: ResultToApply[], items: Array<{ run: number; index: number } | undefined>, executions: Map<string, ExecutionState>) {
  const runs = new Map<string, { exec: ExecutionState; stepId: string; run: number; indexes: number[] }>();
  results.forEach((r, i) => {
    const item = items[i];
    const exec = executions.get(r.executionId);
    if (!item || !exec) return;
    const key = `${r.executionId}/${r.stepId}#${item.run}`;
    let entry = runs.get(key);
    if (!entry) runs.set(key, (entry = { exec, stepId: r.stepId, run: item.run, indexes: [] }));
    entry.indexes.push(item.index);
  });
  return [...runs.values()];
}

/** The waits for events this transaction recorded and left in place: the catch-up's work (waits/event-catch-up.ts). */
function parkedOnEvents(out: Changes): ParkedEventWait[] {
  return out.waitsStarted().flatMap((w) => {
    const step = out.updated.get(w.executionId)?.steps[w.stepId];
    if (!w.eventName || step?.status !== "waiting" || step.wait?.resumeToken !== w.token || step.attempts !== w.attempt) return [];
    const { token, executionId, stepId, attempt, region, eventName, eventFilter } = w;
    return [{ token, executionId, stepId, attempt, region, eventName, ...(eventFilter ? { eventFilter } : {}), ...(step.lastEventSeq ? { afterSeq: step.lastEventSeq } : {}) }];
  });
}

async function applyOne(env: ApplyEnv, exec: ExecutionState, result: ResultToApply, out: Changes, waits: WaitTokens): Promise<ApplyOutcome> {
  const step = exec.steps[result.stepId];
  const taskRow = { taskId: result.taskId, attempt: result.attempt };
  if (isTerminal(exec.status) || !step || step.status !== "dispatched" || step.attempts !== result.attempt) {
    out.taskOutcomes.push({ ...taskRow, status: "ignored" });
    return "ignored";
  }
  const flow = await env.registry.get(exec.flowId, exec.flowVersion);
  const now = new Date();
  const envNow = { subjects: env.subjects, now, breakers: env.breakers, rates: env.rates };
  releaseLane(exec, result.stepId, out);
  const def = flow.graph.steps.get(result.stepId)!;
  const failure = "failure" in result ? result.failure : undefined;
  const rerouted = reroutesAgain(failure, result.metrics.workerId, step.reroutes ?? 0);
  // A refusal for missing capabilities says nothing about the lane's health: the handler never ran.
  if (!isMisrouted(failure, result.metrics.workerId)) env.breakers?.record(laneOf(exec, def), result.outcome, failure);
  const timing = timingOf(result);

  // A run that succeeded or parked keeps its context changes (applied with its outcome, or not at all).
  if ((result.outcome === "success" || result.outcome === "wait") && result.contextUpdates?.length) {
    try {
      exec.context = applyContextUpdates(exec.context, result.contextUpdates);
    } catch (err) {
      out.taskOutcomes.push({ ...taskRow, ...timing, status: "failed", error: failureOf(err) });
      failStep(exec, result.stepId, failureOf(err), out, envNow);
      await advance(exec, flow, out, envNow);
      return "applied";
    }
  }

  switch (result.outcome) {
    case "success": {
      exec.steps[result.stepId] = {
        ...step,
        status: "completed",
        output: result.output ?? null,
        completedAt: now.toISOString(),
        retryAt: undefined,
        deadlineAt: undefined,
        lane: undefined,
        resumed: undefined,
      };
      out.taskOutcomes.push({ ...taskRow, ...timing, status: "completed", output: result.output ?? null });
      emit(exec, out, envNow, "step.completed", { stepId: result.stepId, attempt: result.attempt, output: result.output ?? null });
      break;
    }
    case "failure":
    case "error": {
      out.taskOutcomes.push({ ...taskRow, ...timing, status: "failed", error: result.failure });
      const policy = def.retry ?? flow.definition.defaults?.retry ?? NO_RETRY;
      // Runs after a wait are resumes, and attempts a worker refused for capabilities it lacks
      // are reroutes, not retries: only the tries count against the policy.
      const tries = result.attempt - (step.resumes ?? 0) - (step.reroutes ?? 0);
      // A misrouted attempt goes out again at once: the router sends it to a pool of workers with the capabilities.
      const delayMs = result.deadLetter ? undefined : rerouted ? 0 : nextRetryDelayMs(policy, tries, result.failure);
      if (delayMs === undefined) {
        if (result.deadLetter) {
          declareDeadTask(result.deadLetter.task, { reason: "deliveries_exhausted", lastError: result.failure, deliveries: result.deadLetter.deliveries }, out, envNow);
        } else if (result.failure.retryable && policy.maxAttempts > 1) {
          // Retried as often as the step allows, and the last failure would have been retried again.
          await declareAttemptsExhausted(exec, flow, result.stepId, result.attempt, result.failure, out, envNow);
        }
        failStep(exec, result.stepId, result.failure, out, envNow);
        break;
      }
      exec.steps[result.stepId] = { ...step, error: result.failure, ...(rerouted ? { reroutes: (step.reroutes ?? 0) + 1 } : {}) };
      try {
        const input = await resolveStorable(def.input, scopeOf(exec), `input of step ${result.stepId}`);
        dispatch(exec, flow, result.stepId, input, out, envNow, rerouted ? 0 : Math.max(1, delayMs));
      } catch (err) {
        failStep(exec, result.stepId, failureOf(err), out, envNow);
      }
      break;
    }
    case "wait": {
      const refused = waitRefusal(result.wait, waits);
      if (refused) {
        out.taskOutcomes.push({ ...taskRow, ...timing, status: "failed", error: refused });
        failStep(exec, result.stepId, refused, out, envNow);
        break;
      }
      waits.taken.add(result.wait.resumeToken);
      out.taskOutcomes.push({ ...taskRow, ...timing, status: "waiting" });
      parkStep(exec, result.stepId, result.wait, result.metrics.region, out, envNow);
      break;
    }
  }
  await advance(exec, flow, out, envNow);
  return "applied";
}

/** What an attempt's row records of its run. */
function timingOf(result: ResultToApply) {
  return {
    workerId: result.metrics.workerId,
    startedAt: result.metrics.startedAt,
    completedAt: result.metrics.completedAt,
    // Usage: what the worker measured (the engine's own conclusions ran nothing).
    ...(result.metrics.workerId === ENGINE_WORKER_ID ? {} : { activeMs: Math.round(result.metrics.durationMs) }),
    ...(result.metrics.tier ? { tier: result.metrics.tier } : {}),
  };
}

/**
 * A map item's result (execution/map-step.ts). Only the item's current attempt counts, as
 * for steps; the item's retry policy is the step's. An item cannot wait: a handler that asks
 * to fails its item. A failure past the retries ends the item (and, beyond the step's
 * tolerateFailures, fails the step).
 */
async function applyItemResult(
  env: ApplyEnv,
  exec: ExecutionState,
  result: ResultToApply,
  item: { run: number; index: number },
  reader: MapItemReader,
  q: Queryable,
  out: Changes,
): Promise<ApplyOutcome> {
  const taskRow = { taskId: result.taskId, attempt: result.attempt };
  const step = exec.steps[result.stepId];
  const live = !isTerminal(exec.status) && step?.status === "dispatched" && step.map?.run === item.run;
  const row = live ? await reader.get(exec.id, result.stepId, item.run, item.index) : undefined;
  if (!row || row.status !== "dispatched" || row.attempts !== result.attempt) {
    out.taskOutcomes.push({ ...taskRow, status: "ignored" });
    return "ignored";
  }
  const flow = await env.registry.get(exec.flowId, exec.flowVersion);
  const envNow = { subjects: env.subjects, now: new Date(), breakers: env.breakers, rates: env.rates };
  const def = flow.graph.steps.get(result.stepId)!;
  const timing = timingOf(result);
  if (!isMisrouted("failure" in result ? result.failure : undefined, result.metrics.workerId)) {
    env.breakers?.record(laneOf(exec, def), result.outcome, "failure" in result ? result.failure : undefined);
  }
  let outcome: ItemOutcome;
  if (result.outcome === "success") {
    outcome = { kind: "completed", output: result.output ?? null };
    if (result.contextUpdates?.length) {
      try {
        exec.context = applyContextUpdates(exec.context, result.contextUpdates);
      } catch (err) {
        outcome = { kind: "failed", failure: failureOf(err) };
      }
    }
  } else if (result.outcome === "wait") {
    outcome = { kind: "failed", failure: { code: "INVALID_STATE", message: `item ${item.index} of map step ${result.stepId} asked to wait; map items cannot wait (make the handler a step of its own)`, retryable: false } };
  } else {
    const policy = def.retry ?? flow.definition.defaults?.retry ?? NO_RETRY;
    const delayMs = result.deadLetter ? undefined : nextRetryDelayMs(policy, result.attempt, result.failure);
    outcome = delayMs === undefined ? { kind: "failed", failure: result.failure } : { kind: "retry", delayMs };
    if (result.deadLetter) {
      declareDeadTask(result.deadLetter.task, { reason: "deliveries_exhausted", lastError: result.failure, deliveries: result.deadLetter.deliveries }, out, envNow);
    } else if (delayMs === undefined && result.failure.retryable && policy.maxAttempts > 1) {
      const input = await resolveStorable(def.input, { ...scopeOf(exec), item: row.item, index: item.index }, `input of item ${item.index}`).catch(() => null);
      const task = itemTask(exec, flow, result.stepId, item.run, item.index, result.attempt, input, new Date(result.metrics.startedAt));
      declareDeadTask(task, { reason: "attempts_exhausted", lastError: result.failure, deliveries: 1 }, out, envNow);
    }
  }
  // An item's child whose attempt ended another way (timed out) goes too, as a sub-flow step's does.
  if (def.flow !== undefined && outcome.kind !== "completed" && "failure" in result && result.failure.code !== "SUBFLOW_FAILED" && result.failure.code !== "CANCELLED") {
    const child = childExecutionId(exec.id, `${result.stepId}#${item.run}.${item.index}`, result.attempt);
    out.of(exec.id).messages.push({ subject: "", body: { cancelChild: child }, cancelChild: child });
  }
  out.taskOutcomes.push(
    outcome.kind === "completed"
      ? { ...taskRow, ...timing, status: "completed", output: outcome.output }
      : { ...taskRow, ...timing, status: "failed", error: outcome.kind === "failed" ? outcome.failure : (result as { failure: Failure }).failure },
  );
  await applyItemOutcome(exec, flow, result.stepId, row, outcome, reader, q, out, envNow);
  await advance(exec, flow, out, envNow);
  return "applied";
}

/** Resume tokens held by waiting steps, including those parked earlier in this batch. */
interface WaitTokens {
  taken: Set<string>;
}

/** Why a wait cannot be parked as asked, or undefined. Refused waits fail the step (non-retryable: the handler asked for it). */
function waitRefusal(wait: WaitRequest, waits: WaitTokens): Failure | undefined {
  if (waits.taken.has(wait.resumeToken)) {
    return { code: "RESUME_TOKEN_IN_USE", message: `resume token ${JSON.stringify(wait.resumeToken)} is held by another waiting step; tokens must be unique`, retryable: false };
  }
  if (wait.resumeOn?.filter !== undefined) {
    try {
      checkExpression(wait.resumeOn.filter);
    } catch (err) {
      return { ...failureOf(err), message: `resumeOn.filter: ${failureOf(err).message}` };
    }
  }
  return undefined;
}

/** The dead letter of a step that used up its retries: its last task, rebuilt as it was dispatched. */
async function declareAttemptsExhausted(
  exec: ExecutionState,
  flow: Awaited<ReturnType<FlowRegistry["get"]>>,
  stepId: string,
  attempt: number,
  failure: Failure,
  out: Changes,
  env: AdvanceEnv,
): Promise<void> {
  const def = flow.graph.steps.get(stepId)!;
  // The scope is unchanged since that dispatch (the step is still in flight), so this is the input it ran with.
  const input = await resolveStorable(def.input, scopeOf(exec), `input of step ${stepId}`).catch(() => null);
  const task = taskOf(exec, flow, stepId, attempt, input, new Date(exec.steps[stepId]?.startedAt ?? env.now));
  declareDeadTask(task, { reason: "attempts_exhausted", lastError: failure, deliveries: 1 }, out, env);
}
