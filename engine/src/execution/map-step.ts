import type { Failure, Progress, Task } from "@flowmonkey/shared";
import type { CompiledFlow } from "../flows/registry.js";
import { resolveStorable } from "../flows/resolve-storable.js";
import type { ExecutionState, MapProgress } from "../scheduler/state.js";
import type { Queryable } from "../store/db.js";
import { mapOutputOf, readMapItems, type MapItemRow } from "../store/map-items.js";
import { dueAtOf, emit, failStep, failureOf, queueTask, scopeOf, sendWhenDue, taskOf, type AdvanceEnv } from "./advance.js";
import type { Changes } from "./changes.js";
import { depthRefusal, startChild } from "./subflows.js";

/**
 * Map steps (docs/PROTOCOL.md, Map steps). The list is evaluated once, when the step starts,
 * and written as one row per item (store/map-items.ts); the execution row keeps only counters
 * (StepState.map), so an item's result rewrites one small row, never the list. Each item is
 * its own task — id `<executionId>/<stepId>#<run>.<index>` — with its own attempts, retries,
 * timeout and dead letter (or, mapping a sub-flow, each item's attempt is a child execution); at most `concurrency` are in flight, the next ones dispatched as
 * items end. The step's output, the items' outputs in order, is assembled in the database when
 * the last one ends.
 */

/** The task id of a map item: apart from the step's own id, and from the items of the step's other runs. */
export const itemTaskId = (executionId: string, stepId: string, run: number, index: number) => `${executionId}/${stepId}#${run}.${index}`;

/** The run and index an item task id names, or undefined when `taskId` is not an item id of that execution's step. */
export function itemOfTaskId(taskId: string, executionId: string, stepId: string): { run: number; index: number } | undefined {
  const prefix = `${executionId}/${stepId}#`;
  if (!taskId.startsWith(prefix)) return undefined;
  const parts = /^([1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/.exec(taskId.slice(prefix.length));
  return parts ? { run: Number(parts[1]), index: Number(parts[2]) } : undefined;
}

/**
 * A map step starts a run: evaluates its list, records it, and dispatches the first items. An
 * empty list completes the step at once with `[]`; anything but an array, or a list longer
 * than `maxItems`, fails it (MAP_ITEMS_INVALID) before any item runs.
 */
export async function startMap(exec: ExecutionState, flow: CompiledFlow, stepId: string, out: Changes, env: AdvanceEnv): Promise<void> {
  const def = flow.graph.steps.get(stepId)!;
  const spec = def.map!;
  const step = exec.steps[stepId]!;
  const run = step.attempts + 1;
  const at = env.now.toISOString();
  let list: unknown;
  try {
    list = await resolveStorable(spec.items, scopeOf(exec), `map.items of step ${stepId}`);
  } catch (err) {
    exec.steps[stepId] = { ...step, attempts: run };
    return failStep(exec, stepId, failureOf(err), out, env);
  }
  const invalid = !Array.isArray(list)
    ? `gave ${list === null ? "null" : typeof list}, not an array`
    : list.length > spec.maxItems
      ? `gave ${list.length} items; the step's map.maxItems is ${spec.maxItems}`
      : undefined;
  if (invalid !== undefined) {
    exec.steps[stepId] = { ...step, attempts: run };
    return failStep(exec, stepId, { code: "MAP_ITEMS_INVALID", message: `map.items of step ${stepId} ${invalid}`, retryable: false }, out, env);
  }
  const items = list as unknown[];
  const map: MapProgress = { run, total: items.length, next: 0, running: 0, completed: 0, failed: 0, ...(def.flow !== undefined ? { children: true as const } : {}) };
  if (items.length === 0) {
    exec.steps[stepId] = { ...step, status: "completed", attempts: run, map, output: [], startedAt: step.startedAt ?? at, completedAt: at };
    emit(exec, out, env, "step.completed", { stepId, attempt: run, output: [] });
    return;
  }
  exec.steps[stepId] = { ...step, status: "dispatched", attempts: run, map, startedAt: step.startedAt ?? at, retryAt: undefined, deadlineAt: undefined };
  out.of(exec.id).mapRuns.push({ executionId: exec.id, stepId, run, items });
  emit(exec, out, env, "step.dispatched", { stepId, attempt: run, handler: def.handler, region: def.region ?? exec.region });
  await fillWindow(exec, flow, stepId, async (index) => items[index], out, env);
  // Every item may have failed before it was sent (its input did not resolve) and been tolerated.
  await completeIfDone(exec, stepId, out, env, undefined);
}

/**
 * Dispatches items while fewer than `concurrency` are in flight and some were never sent.
 * A loop, not a recursion: an item whose input fails ends at once and the next one is tried.
 */
async function fillWindow(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  itemAt: (index: number) => Promise<unknown>,
  out: Changes,
  env: AdvanceEnv,
): Promise<void> {
  const spec = flow.graph.steps.get(stepId)!.map!;
  for (;;) {
    const map = liveMap(exec, stepId);
    if (!map || map.running >= spec.concurrency || map.next >= map.total) return;
    const index = map.next++;
    map.running++;
    await dispatchItem(exec, flow, stepId, index, await itemAt(index), 1, out, env, 0);
  }
}

/** The step's map counters while its run is in flight, else undefined (it failed, or its execution ended). */
function liveMap(exec: ExecutionState, stepId: string): MapProgress | undefined {
  const step = exec.steps[stepId];
  return step?.status === "dispatched" ? step.map : undefined;
}

/** Sends one attempt of one item (a retry after `delayMs`); an input that does not resolve fails the item. */
async function dispatchItem(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  index: number,
  item: unknown,
  attempt: number,
  out: Changes,
  env: AdvanceEnv,
  delayMs: number,
): Promise<void> {
  const def = flow.graph.steps.get(stepId)!;
  const map = liveMap(exec, stepId)!;
  let input: unknown;
  try {
    input = await resolveStorable(def.input, { ...scopeOf(exec), item, index }, `input of item ${index} of step ${stepId}`);
  } catch (err) {
    return endItem(exec, flow, stepId, index, attempt, { failure: failureOf(err) }, out, env);
  }
  if (def.flow !== undefined) return dispatchSubflowItem(exec, flow, stepId, index, attempt, input, out, env, delayMs);
  const dueAt = dueAtOf(exec, def, env, delayMs);
  const task: Task = itemTask(exec, flow, stepId, map.run, index, attempt, input, dueAt);
  // Items are not admitted through a tenant's lanes: the map's own concurrency bounds them.
  sendWhenDue(queueTask(exec, def, task, dueAt, out, env), dueAt, out.of(exec.id), env);
  out.of(exec.id).mapItems.push({
    executionId: exec.id,
    stepId,
    run: map.run,
    idx: index,
    status: "dispatched",
    attempts: attempt,
    deadlineAt: new Date(dueAt.getTime() + task.config.timeoutMs).toISOString(),
  });
}

/** An item of a map over a sub-flow: its attempt starts a child execution, whose end concludes the item. */
function dispatchSubflowItem(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  index: number,
  attempt: number,
  input: unknown,
  out: Changes,
  env: AdvanceEnv,
  delayMs: number,
): void {
  const map = liveMap(exec, stepId)!;
  const tooDeep = depthRefusal(exec, flow.graph.steps.get(stepId)!.flow!);
  if (tooDeep) return endItem(exec, flow, stepId, index, attempt, { failure: tooDeep }, out, env);
  const taskId = itemTaskId(exec.id, stepId, map.run, index);
  const { deadlineAt } = startChild(exec, flow, stepId, { taskId, key: `${stepId}#${map.run}.${index}`, attempt }, input, out, delayMs, env);
  out.of(exec.id).mapItems.push({ executionId: exec.id, stepId, run: map.run, idx: index, status: "dispatched", attempts: attempt, ...(deadlineAt ? { deadlineAt } : {}) });
}

/** The task of one item's attempt: the step's task, with the item's id and coordinates. */
export function itemTask(exec: ExecutionState, flow: CompiledFlow, stepId: string, run: number, index: number, attempt: number, input: unknown, dueAt: Date): Task {
  return { ...taskOf(exec, flow, stepId, attempt, input, dueAt), taskId: itemTaskId(exec.id, stepId, run, index), item: { index, run } };
}

/**
 * An item ended for good (completed, or failed past its retries): counted, its row written,
 * the step's progress published; one failure more than `tolerateFailures` fails the step.
 */
function endItem(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  index: number,
  attempts: number,
  outcome: { output: unknown } | { failure: Failure },
  out: Changes,
  env: AdvanceEnv,
): void {
  const map = liveMap(exec, stepId)!;
  const spec = flow.graph.steps.get(stepId)!.map!;
  map.running--;
  const base = { executionId: exec.id, stepId, run: map.run, idx: index, attempts };
  if ("output" in outcome) {
    map.completed++;
    out.of(exec.id).mapItems.push({ ...base, status: "completed", output: outcome.output });
  } else {
    map.failed++;
    out.of(exec.id).mapItems.push({ ...base, status: "failed", error: outcome.failure });
  }
  const done = map.completed + map.failed;
  const progress: Progress = {
    executionId: exec.id,
    stepId,
    percent: Math.floor((done / map.total) * 100),
    message: `${done}/${map.total} items done${map.failed > 0 ? `, ${map.failed} failed` : ""}`,
    items: { done, total: map.total, failed: map.failed },
    at: env.now.toISOString(),
  };
  out.of(exec.id).messages.push({ subject: env.subjects.progress(exec.id, stepId), body: progress });
  if ("failure" in outcome && map.failed > spec.tolerateFailures) {
    const { code, message } = outcome.failure;
    failStep(exec, stepId, {
      code: "MAP_ITEMS_FAILED",
      message: `item ${index} of step ${stepId} failed: ${code}: ${message} (${map.failed} of ${map.total} failed; map.tolerateFailures is ${spec.tolerateFailures})`,
      retryable: false,
    }, out, env);
  }
}

/** When every item has ended: the step completes with their outputs in item order (null for a tolerated failure). */
async function completeIfDone(exec: ExecutionState, stepId: string, out: Changes, env: AdvanceEnv, q: Queryable | undefined): Promise<void> {
  const map = liveMap(exec, stepId);
  if (!map || map.completed + map.failed < map.total) return;
  // Items that ended before this transaction are in the table; those that ended in it are not yet.
  const output = q ? await mapOutputOf(q, { executionId: exec.id, stepId, run: map.run }) : [];
  while (output.length < map.total) output.push(null);
  for (const move of out.of(exec.id).mapItems) {
    if (move.stepId === stepId && move.run === map.run) output[move.idx] = move.status === "completed" ? (move.output ?? null) : null;
  }
  const step = exec.steps[stepId]!;
  exec.steps[stepId] = { ...step, status: "completed", output, completedAt: env.now.toISOString(), retryAt: undefined, deadlineAt: undefined };
  emit(exec, out, env, "step.completed", { stepId, attempt: step.attempts, output });
}

/**
 * The items one transaction reads: fetched after the execution rows (every item move changes
 * its execution's version, so they are what that version decided), a run's at once, and kept
 * up to date as the transaction moves them.
 */
export class MapItemReader {
  readonly #rows = new Map<string, MapItemRow>();
  constructor(private readonly q: Queryable) {}

  /** Reads the items results name, and the next ones each run would dispatch, in one query per run. */
  async prefetch(runs: Array<{ exec: ExecutionState; stepId: string; run: number; indexes: number[] }>): Promise<void> {
    for (const { exec, stepId, run, indexes } of runs) {
      const map = exec.steps[stepId]?.map;
      const from = map?.run === run ? map.next : 0;
      const ahead = map?.run === run ? indexes.length : 0;
      this.#keep(exec.id, stepId, run, await readMapItems(this.q, { executionId: exec.id, stepId, run }, indexes, from, ahead));
    }
  }

  async get(executionId: string, stepId: string, run: number, index: number): Promise<MapItemRow | undefined> {
    const key = `${executionId}/${stepId}#${run}.${index}`;
    if (!this.#rows.has(key)) this.#keep(executionId, stepId, run, await readMapItems(this.q, { executionId, stepId, run }, [index], 0, 0));
    return this.#rows.get(key);
  }

  /** What this transaction decided for an item: later results of the same batch see it. */
  moved(executionId: string, stepId: string, run: number, index: number, status: MapItemRow["status"], attempts: number): void {
    const row = this.#rows.get(`${executionId}/${stepId}#${run}.${index}`);
    if (row) Object.assign(row, { status, attempts });
  }

  #keep(executionId: string, stepId: string, run: number, rows: Map<number, MapItemRow>): void {
    for (const [index, row] of rows) this.#rows.set(`${executionId}/${stepId}#${run}.${index}`, row);
  }
}

/** How one item attempt came out, as applyItemResult is told it. */
export type ItemOutcome =
  | { kind: "completed"; output: unknown }
  | { kind: "retry"; delayMs: number }
  | { kind: "failed"; failure: Failure };

/**
 * Applies the decided outcome of an item's current attempt: records it, retries it, or ends it
 * — then dispatches the next items into the freed slot and completes the step when all ended.
 */
export async function applyItemOutcome(
  exec: ExecutionState,
  flow: CompiledFlow,
  stepId: string,
  row: MapItemRow,
  outcome: ItemOutcome,
  reader: MapItemReader,
  q: Queryable,
  out: Changes,
  env: AdvanceEnv,
): Promise<void> {
  const map = liveMap(exec, stepId)!;
  const { run } = map;
  if (outcome.kind === "retry") {
    const next = row.attempts + 1;
    reader.moved(exec.id, stepId, run, row.idx, "dispatched", next);
    await dispatchItem(exec, flow, stepId, row.idx, row.item, next, out, env, Math.max(1, outcome.delayMs));
    // The retry's input may have failed to resolve: then the item has ended.
  } else {
    const attempts = row.attempts;
    reader.moved(exec.id, stepId, run, row.idx, outcome.kind, attempts);
    endItem(exec, flow, stepId, row.idx, attempts, outcome.kind === "completed" ? { output: outcome.output } : { failure: outcome.failure }, out, env);
  }
  await fillWindow(exec, flow, stepId, async (index) => (await reader.get(exec.id, stepId, run, index))?.item ?? null, out, env);
  await completeIfDone(exec, stepId, out, env, q);
}
