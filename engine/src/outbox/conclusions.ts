import { z } from "zod";
import { ENGINE_WORKER_ID, TaskResult, type Failure } from "@flowmonkey/shared";
import type { OutboxMessage } from "../store/outbox.js";

/** The part of a task body that names its attempt (a task is told apart from events and dead-letter notices by it). */
const TaskIdentity = z.object({
  taskId: z.string(),
  executionId: z.string(),
  stepId: z.string(),
  attempt: z.number().int().positive(),
  handler: z.object({ type: z.string() }),
  metadata: z.object({ region: z.string() }),
});
export type TaskIdentity = z.infer<typeof TaskIdentity>;

/** The attempt an outbox message is the task of, or undefined for anything else (events, dead-letter notices). */
export function taskIdentityOf(message: OutboxMessage): TaskIdentity | undefined {
  if (message.conclude || !message.msgId) return undefined;
  const parsed = TaskIdentity.safeParse(message.body);
  return parsed.success ? parsed.data : undefined;
}

/** `<taskId>:<attempt>`, the key attemptsStillDispatched answers with. */
export const attemptKey = (t: { taskId: string; attempt: number }) => `${t.taskId}:${t.attempt}`;

/**
 * The result the engine applies for an attempt whose task could not be sent. Outcome `failure`
 * (not `error`): it says nothing about the lane's workers, so circuit breakers do not count it.
 */
export function unsentTaskResult(task: TaskIdentity, failure: Failure, now = new Date()): TaskResult {
  const at = now.toISOString();
  return {
    taskId: task.taskId,
    executionId: task.executionId,
    stepId: task.stepId,
    attempt: task.attempt,
    outcome: "failure",
    failure,
    metrics: { startedAt: at, completedAt: at, durationMs: 0, workerId: ENGINE_WORKER_ID, region: task.metadata.region },
  };
}

/** Written to the outbox in place of a task that cannot be sent: the relay applies it instead of publishing. */
export function conclusionOf(message: OutboxMessage, task: TaskIdentity, failure: Failure): OutboxMessage {
  return { subject: message.subject, body: unsentTaskResult(task, failure), conclude: true };
}

/** A conclusion's result, read back from its outbox row (outside data: parsed, never cast). */
export function conclusionResult(message: OutboxMessage): TaskResult {
  return TaskResult.parse(message.body);
}
