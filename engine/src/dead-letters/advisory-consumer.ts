import type { JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { decode, excerpt, MaxDeliveriesAdvisory, Task, toError, toFmError, type Failure, type Names } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { retryLater } from "../consumers/redelivery.js";
import { applyResults, engineConcluded, type ResultToApply } from "../results/apply-result.js";
import type { ResultEnv } from "../results/result-consumer.js";
import type { Rejection } from "../store/rejections.js";

export interface DeadTaskEnv extends ResultEnv {
  jsm: JetStreamManager;
  names: Names;
}

/** What the engine reports as the attempt's result when JetStream gave up on it. */
export function deliveriesExhausted(deliveries: number): Failure {
  return {
    code: "DELIVERIES_EXHAUSTED",
    message:
      `no worker finished the task in ${deliveries} deliveries: each worker that took it stopped heartbeating ` +
      `(killed, crashed or cut off) before it sent a result`,
    retryable: false,
  };
}

/**
 * Consumes the task pools' MAX_DELIVERIES advisories (kept in a stream, so none is missed
 * while no engine runs). For each, the task still parked in the work queue is read back, its
 * step settled as failed with DELIVERIES_EXHAUSTED and the task dead-lettered in the same
 * transaction; then the message is deleted from the task stream and the advisory acked. Every
 * step is safe to repeat after a crash: the result applies once per attempt, the dead letter
 * is keyed by task and attempt, and a task already deleted is simply skipped.
 */
export function createDeadTaskProcessor(env: DeadTaskEnv) {
  const tasksStream = env.names.streams.tasks;

  const process = async (msgs: JsMsg[]) => {
    const results: ResultToApply[] = [];
    const rejections: Rejection[] = [];
    const parked: number[] = [];
    for (const msg of msgs) {
      let advisory: MaxDeliveriesAdvisory;
      try {
        advisory = decode(msg.data, MaxDeliveriesAdvisory, { what: `advisory on ${msg.subject}` });
      } catch (err) {
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) });
        continue;
      }
      if (advisory.stream !== tasksStream) continue;
      const stored = await env.jsm.streams.getMessage(tasksStream, { seq: advisory.stream_seq });
      // Gone already: a slow worker's ack landed after all, or an earlier pass deleted it.
      if (!stored) continue;
      parked.push(advisory.stream_seq);
      let task: Task;
      try {
        task = decode(stored.data, Task, { maxBytes: env.maxMessageBytes, what: `task at ${tasksStream} seq ${advisory.stream_seq}` });
      } catch (err) {
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject: stored.subject, code: error.code, reason: `undeliverable task dropped: ${error.message}`, excerpt: excerpt(stored.data) });
        continue;
      }
      // The sequence must still hold the task that consumer gave up on (a recreated stream reuses
      // sequences). The subject it was stored under names the pool (a capability-qualified one
      // included), and so the one consumer whose filter it is.
      const pool = env.names.subjects.parseTask(stored.subject);
      if (!pool || pool.handler !== task.handler.type || env.names.consumers.taskPool(pool.region, pool.handler, pool.priority, pool.capabilities) !== advisory.consumer) {
        parked.pop();
        env.log.warn({ streamSeq: advisory.stream_seq, consumer: advisory.consumer, taskId: task.taskId }, "stale MAX_DELIVERIES advisory: the sequence now holds another task; ignored");
        continue;
      }
      results.push({
        ...engineConcluded(
          { taskId: task.taskId, executionId: task.executionId, stepId: task.stepId, attempt: task.attempt, region: task.metadata.region },
          deliveriesExhausted(advisory.deliveries),
        ),
        deadLetter: { task, deliveries: advisory.deliveries },
      });
      env.log.warn(
        { executionId: task.executionId, taskId: task.taskId, stepId: task.stepId, attempt: task.attempt, region: task.metadata.region, consumer: advisory.consumer, deliveries: advisory.deliveries },
        "task deliveries exhausted; dead-lettering it",
      );
    }
    const { committed } = await applyResults(env, results, rejections);
    env.relay.afterCommit(committed);
    // Only now that the outcome is committed may the parked copy go.
    for (const seq of parked) {
      await env.jsm.streams.deleteMessage(tasksStream, seq, false).catch((err: unknown) => {
        env.log.debug({ err: toError(err), streamSeq: seq }, "parked task already gone");
      });
    }
    for (const msg of msgs) msg.ack();
  };
  return (msgs: JsMsg[]) => processIsolated(msgs, process, (msg, err) => retryLater(msg, err, env.log));
}
