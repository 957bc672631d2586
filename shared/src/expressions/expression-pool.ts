import { fileURLToPath } from "node:url";
import workerpool from "workerpool";
import { toError } from "../errors/coerce.js";
import type { Logger } from "../runtime/log.js";
import { resolveExpressionBounds, type ExpressionBounds } from "./bounds.js";
import { EVALUATE_METHOD, type EvaluationReply, type EvaluationRequest } from "./protocol.js";

/** An evaluation's outcome: the values in order, or why it stopped (`index` -1: not one expression's fault). */
export type EvaluationOutcome =
  | { ok: true; values: unknown[] }
  | { ok: false; index: number; reason: "parse" | "evaluate" | "result" | "time-limit" | "memory-limit" | "crashed"; message: string };

/**
 * How long past `timeoutMs` a busy evaluator process is given before it is killed. JSONata's own
 * timeout (checked between evaluation steps) usually answers first, without losing the process;
 * a regex backtracking or one giant string operation never reaches that check.
 */
const KILL_GRACE_MS = 100;
/** workerpool asks a timed-out process to clean up, then to exit, waiting this long each time, then kills it. */
const TERMINATE_WAIT_MS = 25;
const CHILD_SCRIPT = fileURLToPath(new URL("./evaluator-process.js", import.meta.url));

/**
 * A warm pool of evaluator processes (workerpool): JSONata runs there under a hard time and
 * memory bound. Processes, not worker threads: a worker thread that reaches its resourceLimits
 * can abort the whole process (nodejs/node#47224 — seen here with `$join([1..10000000]…)`),
 * while a child that runs out of heap dies alone. A killed or dead process is replaced; the
 * evaluations queued behind it run on the others, or on its replacement.
 */
export class ExpressionPool {
  readonly bounds: ExpressionBounds;
  readonly #pool: workerpool.Pool;
  readonly #log: Logger | undefined;
  readonly #idleCloseMs: number | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #killed = 0;
  #closing: Promise<void> | undefined;

  /**
   * `idleCloseMs`: close the pool once it has been idle this long (its processes' IPC channels
   * would otherwise keep a short-lived process, such as a CLI tool, from exiting).
   */
  constructor(bounds: Partial<ExpressionBounds> = {}, log?: Logger, options: { idleCloseMs?: number } = {}) {
    this.bounds = resolveExpressionBounds(bounds);
    this.#log = log;
    this.#idleCloseMs = options.idleCloseMs;
    // The parent's NODE_OPTIONS (a test runner's loaders, a bigger heap) must not reach the child.
    const { NODE_OPTIONS: _ignored, ...env } = process.env;
    this.#pool = workerpool.pool(CHILD_SCRIPT, {
      workerType: "process",
      minWorkers: this.bounds.processes,
      maxWorkers: this.bounds.processes,
      workerTerminateTimeout: TERMINATE_WAIT_MS,
      // Piped and dropped: a dying child's V8 heap report is noise in the parent's log; its
      // death is reported below, once.
      emitStdStreams: true,
      forkOpts: { execArgv: [`--max-old-space-size=${this.bounds.memoryMb}`, "--max-semi-space-size=8"], env },
    });
  }

  /** Evaluates `expressions` in order over `data` in one evaluator process. Never throws for the expressions' sake. */
  async evaluate(expressions: readonly string[], data: unknown): Promise<EvaluationOutcome> {
    if (this.#closing) throw new Error("expression pool is closed");
    clearTimeout(this.#idleTimer);
    this.#inFlight++;
    try {
      return await this.#evaluate(expressions, data);
    } finally {
      if (--this.#inFlight === 0 && this.#idleCloseMs !== undefined) this.#idleTimer = setTimeout(() => void this.close(), this.#idleCloseMs);
    }
  }

  async #evaluate(expressions: readonly string[], data: unknown): Promise<EvaluationOutcome> {
    const { timeoutMs, maxDepth, maxResultBytes, memoryMb } = this.bounds;
    const request: EvaluationRequest = { expressions: [...expressions], data, timeoutMs, maxDepth, maxResultBytes };
    let reply: EvaluationReply;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    // The clock starts when the process says it has begun (EVALUATION_STARTED), not when the
    // evaluation is queued: a replacement process still starting up, or a queue behind a
    // hostile expression, must not eat an innocent evaluation's time.
    const running = this.#pool.exec(EVALUATE_METHOD, [request], {
      on: () => {
        timer ??= setTimeout(() => {
          timedOut = true;
          running.cancel(); // workerpool kills the busy process and starts another
        }, timeoutMs + KILL_GRACE_MS);
      },
    });
    try {
      reply = (await running) as EvaluationReply;
    } catch (thrown) {
      if (timedOut) {
        this.#killed++;
        this.#log?.warn({ limitMs: timeoutMs, expressions: excerpts(expressions) }, "expression stopped at its time limit; evaluator process killed");
        return { ok: false, index: -1, reason: "time-limit", message: `exceeded the ${timeoutMs} ms time limit` };
      }
      if (thrown instanceof workerpool.TerminateError && !this.#closing) {
        this.#killed++;
        if (abortedByV8(thrown)) {
          this.#log?.warn({ limitMb: memoryMb, expressions: excerpts(expressions) }, "expression's evaluator process ran out of memory; replaced");
          return { ok: false, index: -1, reason: "memory-limit", message: `exceeded the ${memoryMb} MB memory limit` };
        }
        this.#log?.error({ err: thrown, expressions: excerpts(expressions) }, "expression's evaluator process died; replaced");
        return { ok: false, index: -1, reason: "crashed", message: "its evaluator process died unexpectedly" };
      }
      throw toError(thrown);
    } finally {
      clearTimeout(timer);
    }
    if (!reply.ok) return { ok: false, index: reply.index, reason: reply.stage, message: reply.message };
    return { ok: true, values: JSON.parse(reply.json) as unknown[] };
  }

  /** Resolves once every process has answered once (spawned and loaded), so the first real evaluation pays no start-up. */
  async warm(): Promise<void> {
    const outcomes = await Promise.all(Array.from({ length: this.bounds.processes }, () => this.evaluate(["null"], null)));
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok) throw new Error(`expression evaluator processes do not work (${CHILD_SCRIPT}): ${failed.message}`);
  }

  stats(): { processes: number; busy: number; queued: number; killed: number } {
    const s = this.#pool.stats();
    return { processes: s.totalWorkers, busy: s.busyWorkers, queued: s.pendingTasks, killed: this.#killed };
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Kills the processes; evaluations in flight are rejected. Idempotent. */
  close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    this.#closing ??= this.#pool.terminate(true).then(
      () => undefined,
      (err: unknown) => this.#log?.warn({ err: toError(err) }, "expression pool did not close cleanly"),
    );
    return this.#closing;
  }
}

/**
 * workerpool tells how a child died only in its TerminateError's text ("signalCode: `SIGABRT`").
 * V8 aborts the process (SIGABRT) when it cannot stay under --max-old-space-size.
 */
function abortedByV8(err: Error): boolean {
  return /signalCode: `SIGABRT`|exitCode: `134`/.test(err.message);
}

function excerpts(expressions: readonly string[]): string[] {
  return expressions.slice(0, 5).map((e) => (e.length > 200 ? `${e.slice(0, 200)}…` : e));
}
