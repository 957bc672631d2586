/**
 * Parent side of the benchmark's child processes (engine, worker, ceiling worker): each runs
 * `node --import tsx <file>` so it gets its own core, and talks JSON lines — commands on its
 * stdin, `{"bench": ...}` lines on its stdout. Its stderr (logs) is kept for error messages.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { withDeadline } from "./stats.js";

export interface ChildHandle {
  readonly name: string;
  readonly pid: number;
  /** What the child said in its ready line (worker: workerId, concurrency…). */
  readonly info: Record<string, unknown>;
  /** Sends a command and resolves with the child's reply. */
  request<T = Record<string, unknown>>(cmd: string, timeoutMs?: number, args?: Record<string, unknown>): Promise<T>;
  /** Asks the child to stop cleanly; SIGKILL when it has not exited within timeoutMs. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
  /** Sends `signal` (no clean stop) and resolves once the process has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** The last lines the child wrote to stderr. */
  logs(lines?: number): string;
}

const STDERR_CAP = 256 * 1024;

/** Every child started in this process, for printing their logs when the run fails. */
export const children: ChildHandle[] = [];

export async function spawnChild(
  name: string,
  file: string,
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<ChildHandle> {
  const path = fileURLToPath(new URL(file, import.meta.url));
  // BENCH_CPU_PROF_DIR: each child writes a V8 CPU profile there when it exits (for profiling runs).
  const profDir = process.env["BENCH_CPU_PROF_DIR"];
  const profile = profDir ? ["--cpu-prof", "--cpu-prof-dir", `${profDir}/${name}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...profile, "--import", "tsx", path], {
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > STDERR_CAP) stderr = stderr.slice(-STDERR_CAP);
  });
  const logs = (lines = 40) => stderr.split("\n").slice(-lines).join("\n");

  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let exited = false;
  let onReady: ((info: Record<string, unknown>) => void) | undefined;
  let onFail: ((e: Error) => void) | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = true;
      const err = new Error(`${name} (pid ${child.pid}) exited (code ${code}, signal ${signal}); its last log lines:\n${logs()}`);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      onFail?.(err);
      resolve();
    });
  });
  child.once("error", (err) => onFail?.(new Error(`${name}: ${err.message}`)));

  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (!line.startsWith('{"bench"')) return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (msg["bench"] === "ready") onReady?.(msg);
    else if (msg["bench"] === "fatal") onFail?.(new Error(`${name} failed: ${String(msg["message"])}\n${logs()}`));
    else if (msg["bench"] === "reply") {
      const p = pending.get(msg["id"] as number);
      pending.delete(msg["id"] as number);
      if (msg["error"] !== undefined) p?.reject(new Error(`${name}: ${String(msg["error"])}`));
      else p?.resolve(msg);
    }
  });

  const kill = () => {
    if (!exited) child.kill("SIGKILL");
  };
  let info: Record<string, unknown> = {};
  try {
    info = await withDeadline(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        onReady = resolve;
        onFail = reject;
      }),
      readyTimeoutMs,
      `${name} did not report ready`,
    );
  } catch (err) {
    kill();
    await exit;
    throw new Error(`${(err as Error).message}\n${name} log tail:\n${logs()}`, { cause: err });
  }
  onFail = undefined;

  let stopping: Promise<void> | undefined;
  const handle: ChildHandle = {
    name,
    pid: child.pid as number,
    info,
    request<T>(cmd: string, timeoutMs = 10_000, args: Record<string, unknown> = {}): Promise<T> {
      if (exited) return Promise.reject(new Error(`${name} is not running; its last log lines:\n${logs()}`));
      const id = nextId++;
      const reply = new Promise<T>((resolve, reject) => pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
      child.stdin!.write(`${JSON.stringify({ cmd, id, ...args })}\n`);
      return withDeadline(reply, timeoutMs, `${name} did not answer ${cmd}`).finally(() => pending.delete(id));
    },
    stop(timeoutMs = 15_000) {
      stopping ??= (async () => {
        if (exited) return;
        try {
          child.stdin!.write(`${JSON.stringify({ cmd: "stop", id: 0 })}\n`);
          child.stdin!.end();
        } catch {
          // stdin already closed: the deadline below kills it
        }
        try {
          await withDeadline(exit, timeoutMs, `${name} did not stop`);
        } catch {
          kill();
          await exit;
        }
      })();
      return stopping;
    },
    kill(signal) {
      if (!exited) child.kill(signal);
      return exit;
    },
    logs,
  };
  children.push(handle);
  return handle;
}
