/**
 * The mesh as real child processes: the BUILT binaries (`node engine/dist/main.js`,
 * `node worker/dist/main.js ...`) started against a test nats-server and database, each
 * with its own pino JSON stdout parsed line by line. Readiness is a log line ("engine
 * started" / "worker started") awaited against a deadline; a process that exits first
 * fails the start with its output. Processes are killed by PID (SIGKILL by default) and
 * every process still alive is SIGKILLed in afterAll — and, as a last resort, when the
 * test process itself exits.
 *
 *   const processes = useMeshProcesses();
 *   const mesh = processes({ natsUrl: nats.url, databaseUrl: db.url, prefix, heartbeatTimeoutMs: 2000 });
 *   const engine = await mesh.startEngine();
 *   const worker = await mesh.startWorker();
 *   await worker.kill();                    // SIGKILL, resolves on exit
 *   const engine2 = await mesh.restart(engine);
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";

export const ENGINE_MAIN = fileURLToPath(new URL("../../../engine/dist/main.js", import.meta.url));
export const WORKER_MAIN = fileURLToPath(new URL("../../../worker/dist/main.js", import.meta.url));

export type ProcessKind = "engine" | "worker";

/** One pino JSON line (fields vary by message). */
export interface LogLine {
  level?: number;
  time?: string;
  msg?: string;
  pid?: number;
  [field: string]: unknown;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the exit was observed. */
  at: number;
}

export interface MeshProcessOptions {
  natsUrl: string;
  databaseUrl: string;
  prefix: string;
  /** FM_HEARTBEAT_TIMEOUT_MS of every process (the task consumers' ack_wait). */
  heartbeatTimeoutMs: number;
  /** LOG_LEVEL of every process; default "info". */
  logLevel?: string;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** How long a process may take to log that it started. Default 20 s. */
  startTimeoutMs?: number;
}

export interface WorkerArgs {
  /** A TypeScript worker entry to run instead of the built binary (through tsx), with the same arguments. */
  script?: string;
  region?: string;
  handlers?: string[];
  concurrency?: number;
  /** Extra environment for this worker only. */
  env?: Record<string, string>;
}

interface Spec {
  kind: ProcessKind;
  name: string;
  args: string[];
  env: Record<string, string>;
  worker?: WorkerArgs;
}

const LINE_CAP = 20_000;
const TEXT_CAP = 2 * 1024 * 1024;

/** A started engine or worker process. */
export class MeshProcess {
  readonly kind: ProcessKind;
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt = Date.now();
  /** Parsed JSON log lines (the last LINE_CAP). */
  readonly lines: LogLine[] = [];
  /** Set once the readiness line was seen. */
  readyAt: number | undefined;
  /** The worker's id from its "worker started" line (workers only). */
  workerId: string | undefined;
  readonly exited: Promise<ExitInfo>;
  /** @internal */ readonly spec: Spec;
  #exit: ExitInfo | undefined;
  #text = "";
  #watchers = new Set<(line: LogLine) => void>();

  constructor(spec: Spec, child: ChildProcess) {
    this.spec = spec;
    this.kind = spec.kind;
    this.name = spec.name;
    this.child = child;
    if (child.pid === undefined) throw new Error(`${spec.name}: spawn failed (no pid)`);
    this.pid = child.pid;
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exit = { code, signal, at: Date.now() };
        resolve(this.#exit);
        for (const w of this.#watchers) w({ msg: "<exit>" });
      });
    });
    const onLine = (raw: string) => {
      this.#text += raw + "\n";
      if (this.#text.length > TEXT_CAP) this.#text = this.#text.slice(-TEXT_CAP / 2);
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { msg: raw, raw: true };
      }
      this.lines.push(line);
      if (this.lines.length > LINE_CAP) this.lines.splice(0, this.lines.length - LINE_CAP);
      for (const w of this.#watchers) w(line);
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", (l) => onLine(JSON.stringify({ msg: l, stderr: true })));
  }

  get alive(): boolean {
    return this.#exit === undefined;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** Everything the process printed (stdout and stderr, capped). */
  output(): string {
    return this.#text;
  }

  /** The last `n` output lines, for error messages. */
  tail(n = 40): string {
    return this.#text.split("\n").slice(-n - 1).join("\n");
  }

  /** Lines at level warn (40) or above. */
  problems(): LogLine[] {
    return this.lines.filter((l) => (l.level ?? 0) >= 40);
  }

  /**
   * The first log line (already printed or still to come) matching `predicate`. Rejects at the
   * deadline, or when the process exits without printing one.
   */
  waitForLog(predicate: (line: LogLine) => boolean, { timeoutMs = 20_000, what = "log line" } = {}): Promise<LogLine> {
    const seen = this.lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.#watchers.delete(watch);
        fn();
      };
      const watch = (line: LogLine) => {
        if (line.msg !== "<exit>" && predicate(line)) return done(() => resolve(line));
        if (!this.alive) {
          const e = this.#exit!;
          done(() => reject(new Error(`${this.name} (pid ${this.pid}) exited (code ${e.code}, signal ${e.signal}) before ${what}:\n${this.tail()}`)));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.name} (pid ${this.pid}): no ${what} within ${timeoutMs} ms:\n${this.tail()}`))),
        timeoutMs,
      );
      this.#watchers.add(watch);
      if (!this.alive) watch({ msg: "<exit>" });
    });
  }

  /** Sends `signal` (default SIGKILL) by PID and resolves when the process has exited. */
  async kill(signal: NodeJS.Signals = "SIGKILL", timeoutMs = 10_000): Promise<ExitInfo> {
    if (this.alive) {
      try {
        process.kill(this.pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms of ${signal}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM (a graceful drain), then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<ExitInfo> {
    if (!this.alive) return this.exitInfo!;
    try {
      return await this.kill("SIGTERM", graceMs);
    } catch {
      return this.kill("SIGKILL");
    }
  }
}

// A forked test process that exits (a timeout, a crash) must not leave children behind.
const everyProcess = new Set<MeshProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of everyProcess) {
      if (p.alive) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  });
}

/** Starts, kills and restarts the engine and worker processes of one mesh. */
export class MeshProcesses {
  readonly options: MeshProcessOptions;
  /** Every process started, in start order (dead ones included). */
  readonly all: MeshProcess[] = [];
  #counters: Record<ProcessKind, number> = { engine: 0, worker: 0 };

  constructor(options: MeshProcessOptions) {
    this.options = options;
    installExitHook();
  }

  get engines(): MeshProcess[] {
    return this.all.filter((p) => p.kind === "engine" && p.alive);
  }

  get workers(): MeshProcess[] {
    return this.all.filter((p) => p.kind === "worker" && p.alive);
  }

  #baseEnv(): Record<string, string> {
    const o = this.options;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // Nothing of the test runner's own configuration leaks into the mesh processes.
      if (v === undefined || k.startsWith("FM_") || k === "NATS_URL" || k === "DATABASE_URL" || k === "LOG_LEVEL" || k.startsWith("VITEST")) continue;
      env[k] = v;
    }
    return {
      ...env,
      NATS_URL: o.natsUrl,
      FM_PREFIX: o.prefix,
      FM_HEARTBEAT_TIMEOUT_MS: String(o.heartbeatTimeoutMs),
      LOG_LEVEL: o.logLevel ?? "info",
      FM_LOG_PRETTY: "false",
      ...o.env,
    };
  }

  /** `node engine/dist/main.js`; resolves once it logged "engine started". */
  startEngine(name = `engine-${++this.#counters.engine}`): Promise<MeshProcess> {
    return this.#start({ kind: "engine", name, args: [ENGINE_MAIN], env: { ...this.#baseEnv(), DATABASE_URL: this.options.databaseUrl } });
  }

  /** `node worker/dist/main.js --region r --handlers a,b --concurrency n`; resolves once it logged "worker started". */
  startWorker(worker: WorkerArgs = {}, name = `worker-${++this.#counters.worker}`): Promise<MeshProcess> {
    const args = [
      ...(worker.script ? ["--import", "tsx", worker.script] : [WORKER_MAIN]),
      "--region",
      worker.region ?? "us-east-1",
      "--handlers",
      (worker.handlers ?? ["echo", "delay", "fail"]).join(","),
      "--concurrency",
      String(worker.concurrency ?? 8),
    ];
    return this.#start({ kind: "worker", name, args, env: { ...this.#baseEnv(), ...worker.env }, worker });
  }

  /** SIGKILLs `p` (if alive) and starts a process of the same kind and arguments in its place. */
  async restart(p: MeshProcess): Promise<MeshProcess> {
    await p.kill("SIGKILL");
    return p.kind === "engine" ? this.startEngine() : this.startWorker(p.spec.worker);
  }

  async #start(spec: Spec): Promise<MeshProcess> {
    const child = spawn(process.execPath, spec.args, { env: spec.env, stdio: ["ignore", "pipe", "pipe"] });
    const p = new MeshProcess(spec, child);
    this.all.push(p);
    everyProcess.add(p);
    void p.exited.then(() => everyProcess.delete(p));
    const ready = spec.kind === "engine" ? "engine started" : "worker started";
    try {
      const line = await p.waitForLog((l) => l.msg === ready, { timeoutMs: this.options.startTimeoutMs ?? 20_000, what: `"${ready}"` });
      p.readyAt = Date.now();
      if (typeof line["workerId"] === "string") p.workerId = line["workerId"];
    } catch (err) {
      await p.kill("SIGKILL").catch(() => undefined);
      throw err;
    }
    return p;
  }

  /** SIGKILLs every process still alive and waits for them to exit. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.filter((p) => p.alive).map((p) => p.kill("SIGKILL").catch(() => undefined)));
  }
}

/**
 * Registers an afterAll that SIGKILLs every process of every MeshProcesses made with the
 * returned factory (call it inside tests or hooks, once the fixture URLs exist).
 */
export function useMeshProcesses(): (options: MeshProcessOptions) => MeshProcesses {
  const created: MeshProcesses[] = [];
  afterAll(async () => {
    await Promise.all(created.map((m) => m.killAll()));
  });
  return (options) => {
    const m = new MeshProcesses(options);
    created.push(m);
    return m;
  };
}
