import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { withParentDeath } from "@flowmonkey/shared/dev";
import { paint, type Output } from "../output.js";

export interface ChildSpec {
  /** Shown before each output line: `engine`, `worker eu-west-1`. */
  name: string;
  file: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface ChildExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  exited: Promise<ChildExit>;
  done: boolean;
}

/**
 * The dev mesh's child processes: `node <file>` each, output prefixed line by line, stopped
 * with SIGTERM then SIGKILL after a grace period. Children get their own process group so a
 * Ctrl-C in the terminal reaches only `flowmonkey dev`, which then stops them in order
 * (a second signal to a child would force it instead of letting it drain).
 */
export class ChildGroup {
  readonly #out: Output;
  readonly #running: Running[] = [];
  #stopping = false;
  #onUnexpectedExit: (exit: ChildExit) => void = () => undefined;

  constructor(out: Output) {
    this.#out = out;
    // Never leave orphans behind if this process ends without stopping them (an uncaught error).
    process.once("exit", () => {
      for (const r of this.#running) if (!r.done) r.child.kill("SIGKILL");
    });
  }

  /** Called once for the first child that exits while the group is not stopping. */
  onUnexpectedExit(handler: (exit: ChildExit) => void): void {
    this.#onUnexpectedExit = handler;
  }

  start(spec: ChildSpec): void {
    // SIGTERM from the kernel when `flowmonkey dev` dies, even by SIGKILL: the child drains and
    // exits within its grace (runService's deadline), instead of running on detached.
    const [command, args] = withParentDeath(process.execPath, [spec.file, ...(spec.args ?? [])]);
    const child = spawn(command, args, {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const prefix = paint(`[${spec.name}]`, this.#running.length);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => this.#out.child(prefix, line));
    }
    const running: Running = {
      spec,
      child,
      done: false,
      exited: new Promise((resolve) => {
        child.once("error", (err) => {
          this.#out.warn(`${spec.name}: ${err.message}`);
          running.done = true;
          resolve({ name: spec.name, code: null, signal: null });
        });
        child.once("exit", (code, signal) => {
          running.done = true;
          resolve({ name: spec.name, code, signal });
        });
      }),
    };
    void running.exited.then((exit) => {
      if (!this.#stopping) {
        this.#stopping = true;
        this.#onUnexpectedExit(exit);
      }
    });
    this.#running.push(running);
  }

  /**
   * Stops children in groups, in the order given (e.g. gateway and workers, then the engine);
   * each group gets SIGTERM and `graceMs` to exit before SIGKILL.
   */
  async stop(order: Array<(name: string) => boolean>, graceMs: number): Promise<void> {
    this.#stopping = true;
    const remaining = new Set(this.#running);
    for (const pick of [...order, () => true]) {
      const group = [...remaining].filter((r) => pick(r.spec.name));
      group.forEach((r) => remaining.delete(r));
      await Promise.all(group.map((r) => this.#terminate(r, graceMs)));
    }
  }

  /** SIGKILL to every child still running; for a second Ctrl-C. */
  kill(): void {
    this.#stopping = true;
    for (const r of this.#running) if (!r.done) r.child.kill("SIGKILL");
  }

  async #terminate(r: Running, graceMs: number): Promise<void> {
    if (r.done) return;
    r.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      r.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    if (!graceful) {
      this.#out.warn(`${r.spec.name} did not stop within ${graceMs} ms; killing it`);
      r.child.kill("SIGKILL");
      await r.exited;
    }
  }
}
