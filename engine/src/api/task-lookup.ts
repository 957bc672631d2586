import { FmError, type Names, type Task, type TaskGetReply, type TaskGetRequest } from "@flowmonkey/shared";
import type { ContextOffload } from "../context/offload.js";
import { scopeOf, taskOf } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import { resolveTemplates } from "../flows/expressions.js";
import type { FlowRegistry } from "../flows/registry.js";
import type { Db } from "../store/db.js";
import { deadTaskId, getDeadTaskBody } from "../store/dead-tasks.js";
import { getExecution } from "../store/executions.js";

export interface TaskLookupDeps {
  db: Db;
  registry: FlowRegistry;
  names: Names;
  /** Gives a large context a contextRef, as a dispatch would: the reply must fit in one NATS message. */
  offload: ContextOffload;
}

/**
 * `fm.api.tasks.get`: one attempt of a step as a worker received it, for `flowmonkey task replay`.
 * A dead-lettered attempt is answered with the stored task (exactly what was queued); any other
 * attempt is rebuilt with taskOf from the execution row and its flow version. The rebuilt input
 * is resolved against the execution's current scope, which is the scope it ran with: a step's
 * templates read only its predecessors' outputs, and those do not change once it has started.
 * The vault is always emptied: sealed secrets open only on the pool's workers.
 */
export async function lookUpTask(deps: TaskLookupDeps, request: TaskGetRequest): Promise<TaskGetReply> {
  const [executionId = "", stepId = ""] = request.taskId.split("/");
  const exec = await getExecution(deps.db, executionId);
  if (!exec) throw new FmError("EXECUTION_NOT_FOUND", `no execution ${executionId}`);
  const step = exec.steps[stepId];
  if (!step) throw new FmError("STEP_NOT_FOUND", `execution ${executionId} has no step ${stepId}`);
  const attempt = request.attempt ?? step.attempts;
  if (step.attempts === 0 || attempt > step.attempts) {
    throw new FmError("TASK_NOT_FOUND", `step ${stepId} of ${executionId} has run ${step.attempts} attempt(s); there is no attempt ${attempt || 1}`);
  }

  const dead = await getDeadTaskBody(deps.db, deadTaskId(request.taskId, attempt));
  if (dead) return withoutVault(dead, "dead-letter");

  const flow = await deps.registry.get(exec.flowId, exec.flowVersion);
  const def = flow.graph.steps.get(stepId)!;
  const input = await resolveTemplates(def.input, scopeOf(exec));
  const task = taskOf(exec, flow, stepId, attempt, input, new Date(step.startedAt ?? exec.createdAt));
  return withoutVault(await withLargeContextOffloaded(deps, task), "rebuilt");
}

/**
 * Runs the task through the engine's own context offload, so a context over the inline
 * threshold leaves as a contextRef (content-addressed: normally the very blobs its dispatch
 * stored). The Changes are thrown away: nothing is written to the store.
 */
async function withLargeContextOffloaded(deps: TaskLookupDeps, task: Task): Promise<Task> {
  const out = new Changes();
  const message = { subject: deps.names.subjects.task(task.metadata.region, task.handler.type, task.metadata.priority), body: task as unknown };
  out.of(task.executionId).messages.push(message);
  await deps.offload.offloadTasks(out);
  return message.body as Task;
}

function withoutVault(task: Task, source: TaskGetReply["source"]): TaskGetReply {
  return { task: { ...task, vault: {} }, source, vaultRemoved: Object.keys(task.vault ?? {}) };
}
