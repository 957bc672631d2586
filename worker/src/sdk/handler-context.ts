import type { Logger, ResumeInfo, Task } from "@flowmonkey/shared";
import type { Wait, WaitOptions } from "./wait.js";

/**
 * The execution's context as a handler sees it. Reads see the handler's own writes; writes are
 * not applied anywhere by the worker: they travel as `contextUpdates` in the result and the
 * engine applies them together with the step's outcome. Paths are dot-separated keys.
 *
 * Reads are async because a large context (over the engine's `FM_CONTEXT_INLINE_MAX_BYTES`,
 * 256 KiB by default) is not in the task: it is loaded from the blob bucket on demand, one
 * top-level key at a time (`get("a.b")` loads key `a` only), and cached for the task.
 * Writes are synchronous and need no load.
 */
export interface ContextApi {
  /**
   * The value at `path`, or the whole context without one (which loads every key); undefined
   * when absent. Rejects on a bad path or when the value cannot be loaded.
   */
  get(path?: string): Promise<unknown>;
  /** Like get(path), but never rejects: absent, a bad path or a failed load give `fallback` (logged at debug). */
  getSafe(path: string, fallback?: unknown): Promise<unknown>;
  set(path: string, value: unknown): void;
  /** Shallow-merges `value` into the object at `path` (the root without one). */
  merge(value: Record<string, unknown>): void;
  merge(path: string, value: Record<string, unknown>): void;
  delete(path: string): void;
}

export interface ProgressApi {
  /**
   * Reports progress (0-100) on the live progress subject and in the progress bucket. Updates
   * are throttled to about ten a second per task (the latest one wins); 100 always goes out.
   * Counts as a heartbeat. Never rejects: a lost progress update must not fail the task.
   */
  update(percent: number, message?: string): Promise<void>;
  /** When the handler expects to finish: sent at once with the latest percent, and with every update after. */
  setEstimatedCompletion(at: Date): Promise<void>;
}

/**
 * A stateful handler's progress marker, kept across redeliveries and retries of its step: save
 * every so often, load at the start to resume where the last run got to. Up to 1 MiB it lives
 * in KV; larger states are gzip'd to the blob store. A save counts as a heartbeat.
 */
export interface CheckpointApi {
  save(state: unknown): Promise<void>;
  /** The last saved state of this step (any attempt), or undefined. */
  load(): Promise<unknown>;
  clear(): Promise<void>;
}

export interface EventsApi {
  /** Publishes `data` on `fm.events.<name>` (stream FM_EVENTS) with this execution and step; resolves once stored. */
  emit(name: string, data?: unknown): Promise<void>;
}

export interface PauseApi {
  /**
   * Frees this worker slot until the step is resumed (token, `resumeOn` event, or `maxWaitMs`
   * passing): saves `state` as the checkpoint when given, then ends this run (the returned
   * promise never resolves; do not catch what it throws). When resumed, the handler runs again:
   * `ctx.checkpoint.load()` returns the state and `ctx.resume` says why. Paused time is not
   * counted as active compute.
   */
  wait(options: { reason: string; maxWaitMs?: number; resumeOn?: WaitOptions["resumeOn"]; resumeToken?: string; state?: unknown }): Promise<never>;
}

/**
 * The secrets the step listed under `vault:`, opened with this worker's pool key just before
 * the handler started, and wiped when the task ends. Only the step's own keys are here.
 * Don't log or return them: a returned value becomes the step's output, in the database.
 */
export interface SecretsApi {
  /** The secret's value (a fresh string each call), or undefined when the step did not ask for it. */
  get(key: string): string | undefined;
  has(key: string): boolean;
  /** The names of the secrets this task received. */
  keys(): string[];
}

/** What a handler may know about the task it runs. The sealed vault is deliberately absent. */
export type TaskInfo = Readonly<
  Pick<Task, "taskId" | "executionId" | "flowId" | "flowVersion" | "stepId" | "attempt" | "handler" | "config" | "metadata">
> & {
  /** How many times JetStream has delivered this attempt (1 = first delivery). */
  readonly deliveryCount: number;
};

export interface HandlerContext<I = unknown> {
  /** The step's input, already validated by the handler's `input` schema when it has one. */
  readonly input: I;
  readonly context: ContextApi;
  /** Fires when the task's timeout passes or the worker shuts down; `reason` says which. */
  readonly signal: AbortSignal;
  /** Bound with executionId, taskId, stepId, attempt, workerId and region. */
  readonly log: Logger;
  readonly task: TaskInfo;
  readonly progress: ProgressApi;
  readonly checkpoint: CheckpointApi;
  readonly events: EventsApi;
  readonly pause: PauseApi;
  /** Set when this run follows a wait: why it was resumed, with the resume payload or event data. */
  readonly resume: ResumeInfo | undefined;
  /** Parks the step until resumed: `return ctx.wait({ resumeOn: { event: "order.paid" } })`. */
  wait(options?: WaitOptions): Wait;
  /** The secrets the step asked for (`vault: [...]`), opened for this task only. */
  readonly secrets: SecretsApi;
}
