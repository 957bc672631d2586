import { FmError, type Logger } from "@flowmonkey/shared";
import type { SandboxProcess } from "./sandbox-process.js";

/** Where a sandboxed run gets its process and gives it back. */
export interface ProcessSource {
  acquire(): Promise<SandboxProcess>;
  /** `idle` resolves true when the process may serve another task. */
  release(sandbox: SandboxProcess, idle: Promise<boolean>): void;
  /**
   * Spawns the warm processes (stateless). A bundle that does not load is logged, not thrown:
   * its tasks fail with HANDLER_LOAD_FAILED and the worker serves everything else.
   */
  warm(): Promise<void>;
  close(): void;
  stats(): { idle: number; total: number; spawned: number };
}

/** How long a sandbox may take, after its task answered, to be ready for the next one. */
export const IDLE_WITHIN_MS = 1000;
/**
 * After a sandbox failed to load its bundle, tasks fail at once with that error for this long
 * before another process is tried: a bundle that crashes at load costs a process start every
 * few seconds, not one per task, and never the worker.
 */
export const LOAD_RETRY_MS = 5000;

/** A failure to start a sandbox, as its tasks report it (HANDLER_LOAD_FAILED keeps its code). */
function loadFailure(err: unknown): FmError {
  if (err instanceof FmError && err.code === "HANDLER_LOAD_FAILED") return err;
  return new FmError("HANDLER_LOAD_FAILED", `the sandbox did not start: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * Stateless mode: up to `size` warm sandboxes, each serving one task at a time. A process that
 * died, was killed or never came back idle is dropped and a new one is spawned in its place, so
 * a hostile task costs one process start, never the pool.
 */
export function warmPool(spawn: () => Promise<SandboxProcess>, size: number, log: Logger): ProcessSource {
  const idle: SandboxProcess[] = [];
  const all = new Set<SandboxProcess>();
  const waiters: Array<{ resolve: (p: SandboxProcess) => void; reject: (e: Error) => void }> = [];
  let total = 0;
  let spawned = 0;
  let closed = false;
  /** The last load failure and when it happened: acquire() answers with it until LOAD_RETRY_MS has passed. */
  let broken: { error: FmError; at: number } | undefined;

  const start = async (): Promise<SandboxProcess> => {
    total++;
    try {
      const p = await spawn();
      broken = undefined;
      spawned++;
      all.add(p);
      void p.exited.then(() => {
        all.delete(p);
        const i = idle.indexOf(p);
        if (i < 0) return; // a busy process: its release accounts for it
        idle.splice(i, 1);
        total--;
        refill();
      });
      return p;
    } catch (err) {
      total--;
      const error = loadFailure(err);
      broken = { error, at: performance.now() };
      throw error;
    }
  };
  const give = (p: SandboxProcess) => {
    if (closed) return p.kill();
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(p);
    else idle.push(p);
  };
  const refill = () => {
    if (closed || total >= size) return;
    // After a load failure no process is started for nobody: the next acquire() tries again once LOAD_RETRY_MS has passed.
    if (broken && waiters.length === 0) return;
    start().then(give, (err: unknown) => {
      log.error({ err }, "could not start a replacement sandbox");
      // Every task waiting for a process fails with the load error (none would come soon).
      for (const w of waiters.splice(0)) w.reject(err instanceof Error ? err : new Error(String(err)));
    });
  };

  return {
    async acquire() {
      if (closed) throw new FmError("WORKER_SHUTDOWN", "the sandbox pool is closed");
      while (idle.length > 0) {
        const p = idle.pop()!;
        if (p.alive) return p;
      }
      if (broken && performance.now() - broken.at < LOAD_RETRY_MS) throw broken.error;
      if (total < size) return start();
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    release(sandbox, becameIdle) {
      // A handler that left a loop running after it answered never comes back idle: after this long it is replaced.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), IDLE_WITHIN_MS)));
      void Promise.race([becameIdle, late]).then((ok) => {
        clearTimeout(timer);
        if (ok && sandbox.alive) return give(sandbox);
        sandbox.kill();
        total--;
        refill();
      });
    },
    async warm() {
      const started = await Promise.allSettled(Array.from({ length: size - total }, () => start()));
      for (const s of started) if (s.status === "fulfilled") give(s.value);
      const failed = started.find((s) => s.status === "rejected");
      if (failed) log.error({ err: failed.reason }, "sandboxed handler does not load: its tasks fail with HANDLER_LOAD_FAILED");
    },
    close() {
      closed = true;
      for (const p of all) p.kill(new FmError("WORKER_SHUTDOWN", "the worker stopped"));
      for (const w of waiters.splice(0)) w.reject(new FmError("WORKER_SHUTDOWN", "the sandbox pool is closed"));
    },
    stats: () => ({ idle: idle.length, total, spawned }),
  };
}

/** Stateful mode: a process of its own for every task, killed when the task ends. */
export function processPerTask(spawn: () => Promise<SandboxProcess>): ProcessSource {
  const running = new Set<SandboxProcess>();
  let spawned = 0;
  let closed = false;
  return {
    async acquire() {
      if (closed) throw new FmError("WORKER_SHUTDOWN", "the sandbox pool is closed");
      const p = await spawn().catch((err: unknown) => {
        throw loadFailure(err);
      });
      spawned++;
      running.add(p);
      return p;
    },
    release(sandbox) {
      running.delete(sandbox);
      sandbox.kill();
    },
    warm: () => Promise.resolve(),
    close() {
      closed = true;
      for (const p of running) p.kill(new FmError("WORKER_SHUTDOWN", "the worker stopped"));
    },
    stats: () => ({ idle: 0, total: running.size, spawned }),
  };
}
