import { decode, excerpt, FmError, hasCapabilities, Task, toError } from "@flowmonkey/shared";
import type { JsMsg } from "@nats-io/jetstream";
import type { TaskObserver } from "../metrics/worker-metrics.js";
import type { AnyHandler } from "../sdk/define-handler.js";
import { executeTask, type RunningTask, type TaskRuntime } from "./execute-task.js";
import type { Heartbeat } from "./heartbeat.js";
import { errorResult, type TaskIds } from "./outcome.js";
import { nakQuietly, publishResult, type PublishRetry, type ResultTarget } from "./publish-result.js";
import { Redeliveries } from "./redeliveries.js";
import { NonRetryableFailure } from "../sdk/failures.js";

export interface PipelineDeps {
  runtime: TaskRuntime;
  handlers: ReadonlyMap<string, AnyHandler>;
  /** What this worker offers: a task whose step requires more is refused (CAPABILITY_UNAVAILABLE). @default [] */
  capabilities?: readonly string[];
  results: ResultTarget;
  maxTaskBytes?: number;
  /** Told when a task starts and settles (metrics). */
  observer?: TaskObserver | undefined;
  /** How long a result that cannot be stored is retried before its task is given back. @default DEFAULT_RESULT_GIVE_UP_MS */
  resultGiveUpMs?: number | undefined;
}

export interface PipelineStats {
  /** Tasks whose success result was stored. */
  completed: number;
  /** Tasks whose failure or error result was stored. */
  failed: number;
}

/** Enough of a task to address a result to it, read from a message that is not a valid Task. */
const ReadableIds = Task.pick({ taskId: true, executionId: true, stepId: true, attempt: true });

/**
 * One delivered task message → one settled message: decode, run, publish the result, ack.
 * Never throws; every path ends the message with ack, nak or term.
 */
export class TaskPipeline {
  readonly stats: PipelineStats = { completed: 0, failed: 0 };
  readonly #deps: PipelineDeps;
  readonly #running = new Set<RunningTask>();
  /** Attempts running here (`taskId:attempt`), with any copies JetStream delivered again meanwhile. */
  readonly #attempts = new Map<string, Redeliveries>();
  /** Aborted by abortAll: results still being retried are given up and their tasks given back. */
  readonly #forced = new AbortController();
  /** How a result that cannot be stored is retried (publish-result.ts). */
  readonly #retry: PublishRetry;
  #draining = false;

  constructor(deps: PipelineDeps) {
    this.#deps = deps;
    this.#retry = { signal: this.#forced.signal, ...(deps.resultGiveUpMs === undefined ? {} : { giveUpAfterMs: deps.resultGiveUpMs }) };
  }



  /** From now on a delivered message is handed straight back (nak) instead of run. */
  stopAccepting(): void {
    this.#draining = true;
  }

  /** Aborts every running handler; their tasks are nak'ed and redelivered, with no result. */
  abortAll(reason: Error): number {
    this.#forced.abort(reason);
    for (const run of this.#running) run.abort(reason);
    return this.#running.size;
  }

  /**
   * Stops the handlers running here for an execution that ended (cancelled, or failed by another
   * step): each settles with a non-retryable EXECUTION_ENDED failure, its message is acked, and
   * its slot is free at once instead of when the handler would have finished. Only attempts
   * dispatched before the execution ended (`endedAt`): a step retried after a failure
   * (executions.retryStep) runs a new attempt that this late news must not stop.
   */
  stopExecution(executionId: string, how: "cancelled" | "failed", endedAt: number): number {
    let stopped = 0;
    for (const run of this.#running) {
      if (run.task.executionId !== executionId || Date.parse(run.task.metadata.dispatchedAt) > endedAt) continue;
      run.cancel(new NonRetryableFailure("EXECUTION_ENDED", `execution ${executionId} was ${how} while this step ran`));
      stopped++;
    }
    if (stopped > 0) this.#deps.runtime.log.info({ executionId, stopped }, `stopped the handlers of a ${how} execution`);
    return stopped;
  }

  async run(msg: JsMsg, heartbeat: Heartbeat): Promise<void> {
    if (this.#draining) return nakQuietly(msg);
    const { runtime, handlers, results } = this.#deps;

    let task: Task;
    try {
      task = decode(msg.data, Task, { what: `task on ${msg.subject}`, maxBytes: this.#deps.maxTaskBytes });
    } catch (err) {
      return this.#reject(msg, heartbeat, err);
    }
    const key = `${task.taskId}:${task.attempt}`;
    const copies = this.#attempts.get(key);
    if (copies) {
      runtime.log.warn({ ...idFields(task), deliveryCount: msg.info.deliveryCount }, "task delivered again while it runs here; holding the copy instead of running it twice");
      this.#deps.observer?.redelivered(task);
      return copies.hold(msg, heartbeat);
    }
    const handler = handlers.get(task.handler.type);
    if (!handler) {
      const served = [...handlers.keys()].join(", ");
      return this.#reject(msg, heartbeat, new FmError("HANDLER_NOT_FOUND", `this worker does not serve handler ${task.handler.type} (it serves ${served})`), task);
    }
    const offered = this.#deps.capabilities ?? [];
    if (!hasCapabilities(offered, task.require)) {
      // Routing sends such a task only to a pool of workers that offer them; it got here anyway
      // (published by hand, or by an engine that routes without pools). Never run it: answer with
      // a retryable CAPABILITY_UNAVAILABLE, on which the engine routes the step's next attempt
      // again, instead of handing it back (nak) until its deliveries run out.
      const missing = (task.require ?? []).filter((c) => !offered.includes(c));
      const why = new FmError("CAPABILITY_UNAVAILABLE", `the step requires ${missing.join(", ")}, which worker ${runtime.workerId} does not offer (it offers ${offered.join(", ") || "none"})`);
      return this.#reject(msg, heartbeat, why, task, { require: task.require, capabilities: offered, handler: task.handler.type });
    }

    const redeliveries = new Redeliveries();
    this.#attempts.set(key, redeliveries);
    let stored = false;
    try {
      stored = await this.#runAndPublish(task, handler, msg, heartbeat);
    } finally {
      this.#attempts.delete(key);
      await redeliveries.settle(stored ? "ack" : "nak");
    }
  }

  /** Runs the handler and stores its result; true when the result is stored and the message acked. */
  async #runAndPublish(task: Task, handler: AnyHandler, msg: JsMsg, heartbeat: Heartbeat): Promise<boolean> {
    const { runtime, results } = this.#deps;
    this.#deps.observer?.started(task, msg.info.deliveryCount);
    const running = executeTask(task, handler, runtime, { working: () => msg.working(), deliveryCount: msg.info.deliveryCount });
    this.#running.add(running);
    heartbeat.track(msg);
    const outcome = await running.outcome;
    this.#running.delete(running);

    this.#deps.observer?.finished(task, outcome.kind === "abandoned" ? undefined : outcome.result);
    if (outcome.kind === "abandoned") {
      heartbeat.untrack(msg);
      nakQuietly(msg);
      return false;
    }
    const log = runtime.log;
    // Still tracked by the heartbeat: while the result waits for a results-stream leader, the task is not redelivered.
    const stored = await publishResult(results, msg, outcome.result, "ack", log, running.traceparent, this.#retry);
    heartbeat.untrack(msg);
    if (stored) {
      if (outcome.result.outcome === "success") this.stats.completed++;
      else this.stats.failed++;
      if (log.isLevelEnabled("debug")) log.debug(logFields(outcome.result, msg), "task done");
    }
    return stored;
  }

  /**
   * A task that can never run (poison message, unknown handler): terminated so it is not
   * redelivered, logged, and answered with an `error` result when its ids can be read so the
   * engine can fail the step instead of waiting for it.
   */
  async #reject(msg: JsMsg, heartbeat: Heartbeat, reason: unknown, task?: Task, fields?: Record<string, unknown>): Promise<void> {
    const { runtime, results } = this.#deps;
    const err = toError(reason);
    const ids = task ?? readIds(msg.data);
    // workerId and region are bound on the runtime's logger.
    runtime.log.warn(
      { err, subject: msg.subject, seq: msg.seq, ...(ids ? idFields(ids) : { payload: excerpt(msg.data, 256) }), ...fields },
      ids ? "task rejected; answering with an error result" : "unreadable task terminated",
    );
    if (!ids) {
      try {
        msg.term(); // no reason text: nats-server 2.9 ignores a `+TERM <reason>` ack entirely
      } catch {
        // Connection closed: the message comes back and is rejected again on redelivery.
      }
      return;
    }
    const now = Date.now();
    const result = errorResult(ids, reason, { workerId: runtime.workerId, region: runtime.region, startedAt: now, completedAt: now });
    // Heartbeated while the result is retried, as a run's is: a redelivery would only cost a delivery.
    heartbeat.track(msg);
    const stored = await publishResult(results, msg, result, "term", runtime.log, undefined, this.#retry);
    heartbeat.untrack(msg);
    if (stored) this.stats.failed++;
  }
}

function readIds(data: Uint8Array): TaskIds | undefined {
  try {
    const parsed = ReadableIds.safeParse(JSON.parse(new TextDecoder().decode(data)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    // Not JSON at all: nothing to address a result to.
    return undefined;
  }
}

const idFields = (ids: TaskIds) => ({ executionId: ids.executionId, taskId: ids.taskId, stepId: ids.stepId, attempt: ids.attempt });

function logFields(result: { taskId: string; executionId: string; stepId: string; attempt: number; outcome: string }, msg: JsMsg) {
  return { ...idFields(result), outcome: result.outcome, deliveryCount: msg.info.deliveryCount };
}
