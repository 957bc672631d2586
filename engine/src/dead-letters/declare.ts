import type { DeadTask, Failure, Task } from "@flowmonkey/shared";
import type { AdvanceEnv } from "../execution/advance.js";
import type { Changes } from "../execution/changes.js";
import { deadTaskId } from "../store/dead-tasks.js";

/**
 * Records a task attempt as dead, in the transaction that settles its step: a row for
 * `dlq.list` / `dlq.replay`, and the DeadTask on `fm.dlq.<region>.<handler>` (stream FM_DLQ)
 * through the outbox, de-duplicated by its id.
 */
export function declareDeadTask(
  queued: Task,
  dead: { reason: DeadTask["reason"]; lastError?: Failure; deliveries: number },
  out: Changes,
  env: AdvanceEnv,
): void {
  // Sealed secrets stay out of the dead letter (its row and FM_DLQ outlive the attempt); a replay seals afresh.
  const task: Task = { ...queued, vault: {} };
  const id = deadTaskId(task.taskId, task.attempt);
  const region = task.metadata.region;
  const handler = task.handler.type;
  out.deadTasks.push({
    id,
    executionId: task.executionId,
    stepId: task.stepId,
    attempt: task.attempt,
    region,
    handler,
    reason: dead.reason,
    ...(dead.lastError ? { lastError: dead.lastError } : {}),
    deliveries: dead.deliveries,
    task,
  });
  const body: DeadTask = { id, task, ...dead, at: env.now.toISOString() };
  out.of(task.executionId).messages.push({ subject: env.subjects.dlq(region, handler), body, msgId: `dead:${id}` });
}
