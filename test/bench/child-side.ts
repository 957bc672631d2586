/**
 * Child side of the JSON-lines protocol in child-host.ts. A child calls serveChild() once it is
 * ready; commands arrive on stdin, replies and the ready line go to stdout (logs go to stderr).
 * When stdin closes (the parent died or asked to stop) the child stops and exits.
 */
import { createInterface } from "node:readline";

export type Command = (args: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>;

function send(msg: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

export function fatal(err: unknown): never {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`${message}\n`);
  send({ bench: "fatal", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

export function installFatalHandlers(): void {
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
}

/** Process stats every child reports on `stats`. */
export function processStats(): Record<string, unknown> {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return { pid: process.pid, rss: memory.rss, heapUsed: memory.heapUsed, cpuUserUs: cpu.user, cpuSystemUs: cpu.system };
}

/** `stats` after a full garbage collection (children started with --expose-gc): what is retained, not what waits to be collected. */
export function statsAfterGc(): Record<string, unknown> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("this child was started without --expose-gc");
  gc();
  return processStats();
}

export function serveChild(info: Record<string, unknown>, commands: Record<string, Command>, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const hardExit = setTimeout(() => process.exit(2), 10_000);
    hardExit.unref();
    try {
      await stop();
    } catch (err) {
      process.stderr.write(`stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
    process.exit(0);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const cmd = String(msg["cmd"]);
    if (cmd === "stop") {
      void shutdown();
      return;
    }
    const handler = cmd === "stats" ? () => processStats() : cmd === "statsAfterGc" ? () => statsAfterGc() : commands[cmd];
    if (!handler) {
      send({ bench: "reply", id: msg["id"], error: `unknown command ${cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (reply) => send({ bench: "reply", id: msg["id"], ...reply }),
        (err: unknown) => send({ bench: "reply", id: msg["id"], error: err instanceof Error ? err.message : String(err) }),
      );
  });
  rl.on("close", () => void shutdown());
  process.on("SIGTERM", () => void shutdown());
  process.on("SIGINT", () => void shutdown());
  send({ bench: "ready", pid: process.pid, ...info });
}
