import { FmError, isRuntimeEnvName, type Logger } from "@flowmonkey/shared";
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { LineReader } from "./line-reader.js";
import { fileURLToPath } from "node:url";
import { MessageBudget, type BudgetLimits } from "./message-budget.js";
import { parseFromSandbox, type Done, type Note, type Request, type ToSandbox } from "./protocol.js";

/**
 * The sandbox script. From the built worker it sits beside this file; when this file runs from
 * source (the worker's own unit tests) the built copy is used, since a TypeScript file cannot
 * be forked under the permission model without a loader.
 */
export const CHILD_SCRIPT = fileURLToPath(
  import.meta.url.endsWith(".ts") ? new URL("../../dist/sandbox/child.js", import.meta.url) : new URL("./child.js", import.meta.url),
);

/**
 * The sandbox process's Node flags: a heap limit, Node 20's permission model (reads of the
 * sandbox script only; no writes, child processes, worker threads, addons or WASI), no
 * code generation from strings in any realm (closes the `constructor.constructor` way out of
 * the vm context), and the host realm's intrinsics frozen.
 */
export function sandboxExecArgv(script: string, heapMb: number): string[] {
  return [
    `--max-old-space-size=${heapMb}`,
    "--experimental-permission",
    `--allow-fs-read=${script}`,
    "--disallow-code-generation-from-strings",
    // The host realm's prototypes are frozen: were a host object ever reached from a context, no
    // getter could be planted on a shared prototype to catch `process` or the next task's run.
    "--frozen-intrinsics",
    // Lets child.ts answer `import()` with the context's own SandboxViolation (without it Node
    // 20 rejects with a host-realm error, which would hand the handler the host's prototypes).
    "--experimental-vm-modules",
    "--no-warnings",
  ];
}

/**
 * Set in every sandbox's environment after the manifest's. glibc gives each thread that
 * mallocs its own arena and reserves 64 MiB of address space for each: under the sandbox's
 * address-space limit (isolation.ts) those reservations, not real memory, would use it up
 * (a burst of IPC sends crashed a 256 MiB sandbox with SIGSEGV). Two arenas keep the limit
 * close to what the process really uses.
 */
export const SANDBOX_RUNTIME_ENV = { MALLOC_ARENA_MAX: "2" } as const;

export interface SpawnOptions {
  /** The verified bundle's code. */
  code: string;
  /** Shown in stack traces: `type@version`. */
  filename: string;
  /** V8 old-space limit of the process. */
  heapMb: number;
  /** The process's whole environment (the manifest's constants); the worker's is never inherited. */
  env: Record<string, string>;
  /** The OS isolation chain it is started through (isolation.ts: its own uid, namespaces, limits). */
  launcher: string[];
  log: Logger;
}

/** What the worker does for a run: answer requests and take notes, with the task's real plumbing. */
export interface Bridge {
  request(req: Request): Promise<unknown>;
  note(note: Note): void;
  /** A stray error the run reported (an unhandled rejection, a throwing timer): already counted in the budget. */
  stray(message: string): void;
}

export interface RunInput {
  input: unknown;
  task: unknown;
  secrets: Record<string, string>;
  resume?: unknown;
}

export type RunEnd = { kind: "done"; done: Done } | { kind: "killed"; error: FmError };

// The last bytes of stderr, where V8 says why it aborted.
const STDERR_TAIL_BYTES = 4096;
/**
 * The longest message a sandbox may send, in bytes (child.ts sends nothing longer than 4 MiB
 * plus its run tag): the worker holds at most this much of an unfinished message, and a
 * longer one kills the sandbox with SANDBOX_FLOOD before it is complete.
 */
export const MAX_MESSAGE_BYTES = (4 << 20) + 64;
/**
 * The sandbox's channels, on file descriptors of their own rather than Node's IPC channel
 * (which buffers an unfinished message without limit): newline-framed JSON, the worker's
 * messages on fd 3, the sandbox's on fd 4.
 */
export const SANDBOX_FDS = { fromWorker: 3, toWorker: 4 } as const;
/** How long a sandbox may take to start and evaluate its bundle's top level (child.ts allows the top level 5 s). */
export const LOAD_WITHIN_MS = 20_000;

/**
 * One forked sandbox process: spawned, given its bundle, then asked to run tasks one at a time.
 * It is treated as hostile: what it sends is parsed with zod, over-budget traffic or a bad
 * message kills it, and its death is classified (OOM from V8's own abort message, else a crash).
 */
/**
 * Every sandbox this worker process has started and not yet seen exit. When the worker exits,
 * they are SIGKILLed: a sandbox busy in a synchronous loop cannot hear its IPC channel close,
 * and its hard-TTL timer lived in the worker, so it would otherwise spin on as an orphan (found
 * after test runs: one left per run of the hostile suite). This covers platforms without the
 * parent-death launcher; on Linux the kernel does it, also when the worker is SIGKILLed.
 */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

export class SandboxProcess {
  readonly #child: ChildProcess;
  readonly #toChild: Writable;
  readonly #log: Logger;
  #stderr = "";
  #run = 0;
  #onMessage: ((run: number, message: FromSandboxMessage, bytes: number) => void) | undefined;
  #killReason: FmError | undefined;
  #exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<FmError>;
  readonly startedAt = performance.now();

  private constructor(options: SpawnOptions) {
    this.#log = options.log;
    // Through the isolation chain (isolation.ts): the OS, not JavaScript, is the boundary.
    const [command, ...args] = [...options.launcher, process.execPath, ...sandboxExecArgv(CHILD_SCRIPT, options.heapMb), CHILD_SCRIPT];
    this.#child = spawn(command!, args, {
      // Parsed manifests cannot carry runtime variables; filtered again here because this is the last gate.
      env: { ...Object.fromEntries(Object.entries(options.env).filter(([name]) => !isRuntimeEnvName(name))), ...SANDBOX_RUNTIME_ENV },
      // fd 3: the worker's messages to it; fd 4: its messages to the worker (SANDBOX_FDS).
      stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"],
      // Nothing to read or write there (and in the sandbox's mount namespace every mount is read-only).
      cwd: "/",
    });
    this.#child.stderr?.on("data", (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    this.#toChild = this.#child.stdio[SANDBOX_FDS.fromWorker] as Writable;
    const fromChild = this.#child.stdio[SANDBOX_FDS.toWorker] as Readable;
    this.#toChild.on("error", (err) => this.#log.debug({ err }, "send to sandbox failed (it is exiting)"));
    fromChild.on("error", (err) => this.#log.debug({ err }, "reading from the sandbox failed (it is exiting)"));
    const reader = new LineReader(MAX_MESSAGE_BYTES);
    const onLine = (line: string, bytes: number): boolean => {
      const parsed = parseFromSandbox(line);
      if (!parsed) {
        this.kill(new FmError("SANDBOX_VIOLATION", "the sandbox sent a message that is not part of the protocol"));
        return false;
      }
      this.#onMessage?.(parsed.run, parsed.message, bytes);
      return this.alive;
    };
    fromChild.on("data", (chunk: Buffer) => {
      if (!this.alive) return;
      if (!reader.push(chunk, onLine) && this.alive) {
        this.kill(new FmError("SANDBOX_FLOOD", `the sandbox sent a message longer than ${MAX_MESSAGE_BYTES} bytes`));
      }
    });
    liveChildren.add(this.#child);
    this.exited = new Promise((resolve) => {
      this.#child.on("exit", (code, signal) => {
        liveChildren.delete(this.#child);
        this.#exitInfo = { code, signal };
        resolve(this.#deathReason());
      });
      this.#child.on("error", (err) => this.#log.warn({ err }, "sandbox process error"));
    });
  }

  /**
   * Starts a sandbox and loads the bundle into it. Rejects with HANDLER_LOAD_FAILED when the
   * bundle does not compile, or the process dies (a top level that exhausts its memory, say) or
   * does not get ready within LOAD_WITHIN_MS: the caller fails its tasks with that, never the worker.
   * (A top level that throws or runs past 5 s loads: each task that gets that realm fails with it.)
   */
  static async spawn(options: SpawnOptions): Promise<SandboxProcess> {
    const sandbox = new SandboxProcess(options);
    const failed = (why: string) => new FmError("HANDLER_LOAD_FAILED", `${options.filename} does not load: ${why}`);
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      sandbox.#onMessage = (_run, m) => {
        if (m.t === "hello") sandbox.#send({ t: "init", code: options.code, filename: options.filename });
        else if (m.t === "ready") resolve();
        else if (m.t === "init-failed") reject(failed(m.message));
      };
      timer = setTimeout(() => reject(failed(`its sandbox was not ready within ${LOAD_WITHIN_MS} ms`)), LOAD_WITHIN_MS);
      void sandbox.exited.then((reason) => reject(failed(`its sandbox died while loading it (${reason.code}: ${reason.message})`)));
    });
    try {
      await ready;
    } catch (err) {
      sandbox.kill();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    sandbox.#onMessage = undefined;
    return sandbox;
  }

  get alive(): boolean {
    return this.#exitInfo === undefined && this.#killReason === undefined;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** SIGKILL: the only stop a hostile process cannot delay. `reason` is what a running task fails with. */
  kill(reason?: FmError): void {
    this.#killReason ??= reason ?? new FmError("SANDBOX_CRASHED", "the sandbox was stopped");
    if (this.#exitInfo === undefined) this.#child.kill("SIGKILL");
  }

  /**
   * Runs one task. Resolves with the handler's answer, or with the error the task fails with
   * when the process was killed or died. `idle` resolves true once the process is ready for
   * another task (false if it never gets there).
   */
  run(input: RunInput, bridge: Bridge, limits: BudgetLimits): { end: Promise<RunEnd>; idle: Promise<boolean> } {
    const run = ++this.#run;
    const budget = new MessageBudget(limits);
    let resolveIdle!: (ok: boolean) => void;
    const idle = new Promise<boolean>((r) => (resolveIdle = r));
    const end = new Promise<RunEnd>((resolve) => {
      let done = false;
      void this.exited.then((reason) => {
        resolveIdle(false);
        if (!done) resolve({ kind: "killed", error: reason });
      });
      this.#onMessage = (from, m, bytes) => {
        if (from !== run) return; // a finished run's leftovers
        // Everything a run sends is counted, stray error reports included (200k of them once cost the worker 1.3 s of CPU).
        const over = budget.take(m.t === "req" || m.t === "note" ? m.op : m.t, bytes) ?? (m.t === "req" ? budget.open(bytes) : undefined);
        if (over) return this.kill(new FmError("SANDBOX_FLOOD", over));
        if (m.t === "stray") {
          bridge.stray(m.message);
        } else if (m.t === "done") {
          done = true;
          resolve({ kind: "done", done: m });
        } else if (m.t === "idle") {
          this.#onMessage = undefined;
          resolveIdle(true);
        } else if (m.t === "note") {
          bridge.note(m);
        } else if (m.t === "req") {
          bridge
            .request(m)
            .then(
              (value) => this.#send({ t: "reply", run, id: m.id, ok: true, ...(value === undefined ? {} : { payload: JSON.stringify(value) }) }),
              (err: unknown) => {
                const e = err as { code?: unknown; message?: unknown; retryable?: unknown };
                const failure = { code: typeof e?.code === "string" ? e.code : "HANDLER_FAILED", message: String(e?.message ?? err), retryable: e?.retryable === true };
                this.#send({ t: "reply", run, id: m.id, ok: false, payload: JSON.stringify(failure) });
              },
            )
            .finally(() => budget.close(bytes));
        }
      };
    });
    this.#send({
      t: "run",
      run,
      input: JSON.stringify(input.input ?? null),
      task: JSON.stringify(input.task),
      secrets: JSON.stringify(input.secrets),
      ...(input.resume === undefined ? {} : { resume: JSON.stringify(input.resume) }),
    });
    return { end, idle };
  }

  #send(message: ToSandbox): void {
    if (!this.alive || this.#toChild.destroyed) return;
    this.#toChild.write(`${JSON.stringify(message)}\n`);
  }

  #deathReason(): FmError {
    // V8's fatal "heap out of memory" (it aborts the process) is the only sign of an exhausted heap.
    // Past the address-space limit (isolation.ts) V8 fails to map memory and aborts the same way.
    if (/heap out of memory|Reached heap limit|Fatal process out of memory|Failed to reserve virtual memory/i.test(this.#stderr)) {
      return new FmError("OOM", "the sandboxed handler ran out of memory; its sandbox was killed");
    }
    if (this.#killReason) return this.#killReason;
    const { code, signal } = this.#exitInfo ?? { code: null, signal: null };
    return new FmError("SANDBOX_CRASHED", `the sandbox process exited (${signal ?? `code ${code}`}) while running the task`);
  }
}

type FromSandboxMessage = NonNullable<ReturnType<typeof parseFromSandbox>>["message"];
