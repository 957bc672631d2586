import { endSpan, FmError, type BlobStore, type Logger, parseWith, startSpanFrom, STEP_KEYS, type Task, traceparentOf } from "@flowmonkey/shared";
import { createContextRecorder, type ContextRecorder } from "../plumbing/context-api.js";
import { inlineContextSource, offloadedContextSource } from "../plumbing/context-source.js";
import { createCheckpointApi, type CheckpointSink } from "../plumbing/checkpoints.js";
import { createEventsApi, type EventPublisher } from "../plumbing/events.js";
import { openTaskSecrets, type OpenedSecrets } from "../plumbing/secrets.js";
import { announceStarted, createTaskProgress, type ProgressSink, type TaskProgress } from "../plumbing/progress.js";
import type { AnyHandler } from "../sdk/define-handler.js";
import { PauseSignal, Wait, type WaitOptions } from "../sdk/wait.js";
import type { CheckpointApi, ContextApi, EventsApi, HandlerContext, PauseApi, SecretsApi, TaskInfo } from "../sdk/handler-context.js";
import type { VaultKeyPair } from "@flowmonkey/shared/vault";
import { type Outcome, type Settlement, toOutcome } from "./outcome.js";

/** What every task of one worker shares. */
export interface TaskRuntime {
  workerId: string;
  region: string;
  log: Logger;
  progress: ProgressSink;
  checkpoints: CheckpointSink;
  /** The region's blob bucket: large checkpoints, and where a task's `contextRef` points. */
  blobs: BlobStore;
  /**
   * Another bucket a `contextRef` names (a task offloaded to the mesh's shared bucket, before
   * blobs were kept per region). Absent: every context is read from `blobs`.
   */
  blobsNamed?: (bucket: string) => BlobStore;
  /** JetStream, for ctx.events. */
  js: EventPublisher;
  /** The pool's size class, reported with every result (usage). */
  tier: "small" | "medium" | "large";
  /** Per handler type: the key pair that opens its tasks' sealed secrets (none: such tasks fail). */
  vaultKeys?: ReadonlyMap<string, VaultKeyPair>;
  /** Announce a run that lasts on its progress subject (announceStarted). A local replay does not. */
  announceRuns?: boolean;
}

/**
 * A run still going after this long is announced as started (views show the step `running`). A
 * run over sooner, or one that reports progress first, is not: its result or its progress says
 * more, and the announcement would be one more message through the server, and one more wake-up
 * of every engine, per task (most steps take a few milliseconds).
 */
export const STARTED_ANNOUNCEMENT_DELAY_MS = 20;

/** The JetStream side of one delivery, as much of it as a handler run needs. */
export interface Delivery {
  working(): void;
  readonly deliveryCount: number;
}

export interface RunningTask {
  readonly task: Task;
  /** Settles once: with the handler, at the timeout, or at abort(), whichever is first. */
  readonly outcome: Promise<Outcome>;
  /** Stops the run (worker shutdown): the signal fires with `reason` and the outcome is "abandoned". */
  abort(reason: Error): void;
  /**
   * Stops the run because its execution ended elsewhere (cancelled, failed): the signal fires
   * with `reason` and the outcome is a failure result with it, so the task is settled (acked)
   * instead of handed back to run again.
   */
  cancel(reason: Error): void;
  /** The run's span (W3C traceparent) when its task came with one. */
  readonly traceparent: string | undefined;
}

// setTimeout fires at once for delays above 2^31-1 ms; such a timeout means "practically never".
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs one task's handler: validates its input, gives it a context, and races it against the
 * task's timeout and the worker's shutdown. A handler that ignores its AbortSignal cannot hold
 * the result back; it is left to finish on its own.
 */
export function executeTask(task: Task, handler: AnyHandler, runtime: TaskRuntime, delivery: Delivery): RunningTask {
  const startedAt = Date.now();
  // The run joins the execution's trace: its parent is the engine's dispatch span.
  const span = task.metadata.traceparent
    ? startSpanFrom("flowmonkey.task.run", task.metadata.traceparent, {
        "flowmonkey.execution_id": task.executionId,
        "flowmonkey.step_id": task.stepId,
        "flowmonkey.attempt": task.attempt,
        "flowmonkey.handler": task.handler.type,
        "flowmonkey.worker_id": runtime.workerId,
        "flowmonkey.region": runtime.region,
      })
    : undefined;
  const controller = new AbortController();
  const ctx = new TaskContext(task, runtime, delivery, controller.signal);
  let settle!: (s: Settlement) => void;
  const settled = new Promise<Settlement>((resolve) => (settle = resolve));

  if (runtime.announceRuns) ctx.announceLater(startedAt);
  const timeoutMs = task.config.timeoutMs;
  const timer =
    timeoutMs <= MAX_TIMER_MS
      ? setTimeout(() => {
          settle({ kind: "timedOut", timeoutMs });
          controller.abort(new FmError("TASK_TIMEOUT", `task timed out after ${timeoutMs} ms`));
        }, timeoutMs)
      : undefined;

  void (async () => {
    try {
      // Opened only now, right before the handler, and wiped in finish(): the shortest time in memory.
      ctx.openSecrets(runtime.vaultKeys?.get(task.handler.type));
      const input = handler.input ? parseWith(handler.input, task.input, `input of handler ${handler.type}`) : task.input;
      ctx.input = input;
      settle({ kind: "returned", value: await handler.execute(ctx) });
    } catch (error) {
      settle({ kind: "threw", error });
    }
  })();

  const outcome = settled.then((settlement) => {
    span?.setAttribute("flowmonkey.settlement", settlement.kind);
    if (span) endSpan(span, settlement.kind === "threw" ? settlement.error : settlement.kind === "timedOut" ? "timed out" : undefined);
    clearTimeout(timer);
    ctx.finish();
    const meta = { workerId: runtime.workerId, region: runtime.region, tier: runtime.tier, startedAt, completedAt: Date.now() };
    return toOutcome(task, settlement, meta, ctx.contextUpdates());
  });
  return {
    task,
    outcome,
    traceparent: span ? traceparentOf(span) : undefined,
    abort(reason) {
      // Settle first, so that whatever the handler throws when its signal fires is ignored.
      settle({ kind: "aborted", reason });
      controller.abort(reason);
    },
    cancel(reason) {
      settle({ kind: "threw", error: reason });
      controller.abort(reason);
    },
  };
}

/** The handler's view of its task. Logger, context and progress are built on first use only. */
class TaskContext implements HandlerContext {
  input: unknown = undefined;
  readonly signal: AbortSignal;
  readonly #task: Task;
  readonly #runtime: TaskRuntime;
  readonly #delivery: Delivery;
  #log: Logger | undefined;
  #context: ContextRecorder | undefined;
  #progress: TaskProgress | undefined;
  #checkpoint: CheckpointApi | undefined;
  #events: EventsApi | undefined;
  #info: TaskInfo | undefined;
  #secrets: OpenedSecrets | undefined;
  #announcement: NodeJS.Timeout | undefined;

  constructor(task: Task, runtime: TaskRuntime, delivery: Delivery, signal: AbortSignal) {
    this.#task = task;
    this.#runtime = runtime;
    this.#delivery = delivery;
    this.signal = signal;
  }

  get log(): Logger {
    const t = this.#task;
    // workerId and region are already bound on the runtime's logger.
    return (this.#log ??= this.#runtime.log.child({
      executionId: t.executionId,
      taskId: t.taskId,
      stepId: t.stepId,
      attempt: t.attempt,
      handler: t.handler.type,
      // The execution's trace id (the second field of a W3C traceparent): logs and spans line up.
      ...(t.metadata.traceparent ? { traceId: t.metadata.traceparent.split("-")[1] } : {}),
    }));
  }

  get context(): ContextApi {
    if (!this.#context) {
      const { context, contextRef } = this.#task;
      // A large context is not in the task: its keys are loaded from the blob bucket as they are read.
      const blobs = contextRef && contextRef.bucket !== this.#runtime.blobs.bucket && this.#runtime.blobsNamed ? this.#runtime.blobsNamed(contextRef.bucket) : this.#runtime.blobs;
      const source = contextRef ? offloadedContextSource(blobs, contextRef) : inlineContextSource(context);
      this.#context = createContextRecorder(source, () => this.log);
    }
    return this.#context.api;
  }

  /** Announces the run as started unless it ends, or reports progress, within STARTED_ANNOUNCEMENT_DELAY_MS. */
  announceLater(startedAt: number): void {
    const { executionId, stepId, taskId, attempt } = this.#task;
    this.#announcement = setTimeout(() => {
      this.#announcement = undefined;
      announceStarted(this.#runtime.progress, this.#runtime.region, { executionId, stepId, taskId, attempt }, this.#runtime.log, startedAt);
    }, STARTED_ANNOUNCEMENT_DELAY_MS);
  }

  get progress(): TaskProgress {
    // The handler reports its own progress: that marks the run started.
    clearTimeout(this.#announcement);
    const { executionId, stepId, taskId, attempt } = this.#task;
    const ids = { executionId, stepId, taskId, attempt };
    return (this.#progress ??= createTaskProgress(this.#runtime.progress, this.#runtime.region, ids, () => this.#delivery.working(), () => this.log));
  }

  get checkpoint(): CheckpointApi {
    const { executionId, stepId, item } = this.#task;
    const slot = STEP_KEYS.checkpointSlot(stepId, item);
    return (this.#checkpoint ??= createCheckpointApi(this.#runtime.checkpoints, { region: this.#runtime.region, executionId, stepId: slot }, () => this.#delivery.working(), () => this.log));
  }

  get events(): EventsApi {
    const { executionId, stepId } = this.#task;
    return (this.#events ??= createEventsApi(this.#runtime.js, this.#runtime.progress.subjects, { region: this.#runtime.region, executionId, stepId }));
  }

  get resume() {
    return this.#task.resume;
  }

  wait(options: WaitOptions = {}): Wait {
    return new Wait(options);
  }

  get pause(): PauseApi {
    return {
      wait: async ({ reason, maxWaitMs, resumeOn, resumeToken, state }) => {
        if (state !== undefined) await this.checkpoint.save(state);
        throw new PauseSignal(
          new Wait({ reason, ...(maxWaitMs === undefined ? {} : { timeoutMs: maxWaitMs }), ...(resumeOn ? { resumeOn } : {}), ...(resumeToken ? { resumeToken } : {}) }),
        );
      },
    };
  }

  get task(): TaskInfo {
    const { taskId, executionId, flowId, flowVersion, stepId, attempt, handler, config, metadata } = this.#task;
    return (this.#info ??= {
      taskId,
      executionId,
      flowId,
      flowVersion,
      stepId,
      attempt,
      handler,
      config,
      metadata,
      deliveryCount: this.#delivery.deliveryCount,
    });
  }

  get secrets(): SecretsApi {
    return (this.#secrets ??= openTaskSecrets(this.#task, undefined)).api;
  }

  openSecrets(keys: VaultKeyPair | undefined): void {
    this.#secrets = openTaskSecrets(this.#task, keys);
  }

  contextUpdates() {
    return this.#context?.updates();
  }

  finish(): void {
    clearTimeout(this.#announcement);
    this.#progress?.finish();
    this.#secrets?.clear();
  }
}
