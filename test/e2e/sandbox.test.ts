/**
 * Sandboxed handlers in a real mesh (nats-server, PostgreSQL, engine, worker): handlers built
 * with `flowmonkey handler build` (esbuild), one published to the fm_handlers bucket and one
 * loaded from a directory, run in sandbox processes. Hostile steps fail with clear codes while
 * normal steps on the same worker complete at the same time, and the worker keeps serving.
 * A bundle whose hash does not match its manifest is refused at start.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, isFmError } from "@flowmonkey/shared";
import { buildHandler, publishHandler, readBuiltHandler } from "@flowmonkey/gateway";
import { createWorker, type Worker } from "@flowmonkey/worker";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] }));

let work: string;
let handlerDir: string;
let worker: Worker;

async function writeHandler(dir: string, manifest: object, files: Record<string, string>): Promise<void> {
  await writeFile(join(dir, "handler.json"), JSON.stringify(manifest));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "fm-sandbox-"));
  handlerDir = join(work, "handlers");
  // greet: TypeScript with a relative import (bundled), published to the bucket.
  const greetSrc = join(work, "greet");
  await mkdir(greetSrc, { recursive: true });
  await writeHandler(
    greetSrc,
    { type: "greet", version: "1.0.0", mode: "stateless", timeout: { hardMs: 5000 } },
    {
      "shout.ts": `export const shout = (s: string): string => s.toUpperCase() + "!";`,
      "index.ts": `import { shout } from "./shout";
        export default { async execute(ctx: any) { await ctx.progress.update(50, "half"); return { greeting: shout("hello " + ctx.input.name) }; } };`,
    },
  );
  const greet = await buildHandler(greetSrc, join(work, "out"));
  await publishHandler(mesh.nc, mesh.names.buckets.handlers, await readBuiltHandler(greet.dir));
  // hostile: loaded from the handler directory.
  const hostileSrc = join(work, "hostile");
  await mkdir(hostileSrc, { recursive: true });
  await writeHandler(
    hostileSrc,
    { type: "hostile", version: "2.0.0", timeout: { hardMs: 1500 } },
    {
      "index.js": `export default { async execute(ctx) {
        switch (ctx.input.attack) {
          case "require": return globalThis["req" + "uire"]("fs").readFileSync("/etc/passwd", "utf8");
          case "env": return Object.keys(process.env);
          case "loop": for (;;) {}
          case "memory": { const a = []; for (;;) a.push(new Array(1e6).fill(Math.random())); }
          case "metadata": return (await fetch("http://169.254.169.254/latest/meta-data/")).status;
          case "issue-17": { await null; // issue 17's reproduction
            let e; const ids = [];
            try { for (let i = 0; i < 1001; i++) ids.push(setTimeout(() => {}, 6e4)); } catch (x) { e = x; }
            ids.forEach((id) => clearTimeout(id));
            const hostObjectProto = Object.getPrototypeOf(Object.getPrototypeOf(e)); let proc;
            Object.defineProperty(hostObjectProto, "noDeprecation", { configurable: true, get() { if (this && this.pid) proc = this; } });
            const p = Promise.reject(0); await new Promise((r) => setTimeout(r, 30)); p.catch(() => {}); await new Promise((r) => setTimeout(r, 30));
            proc.getBuiltinModule("net").connect(ctx.input.port, "127.0.0.1").write("hi");
            return "connected"; }
          case "strays": for (let b = 0; b < 200; b++) { for (let i = 0; i < 1000; i++) Promise.reject(i); await new Promise((r) => setTimeout(r, 1)); } return "survived";
          case "context-flood": { const mb = "x".repeat(1 << 20); for (let i = 0; i < 2000; i++) { ctx.context.set("k" + (i % 4), mb); await new Promise((r) => setTimeout(r, 20)); } return "survived"; }
        }
      } };`,
    },
  );
  await buildHandler(hostileSrc, handlerDir);
  // heavy: its top level exhausts the heap when it loads (it used to stop the whole worker from starting).
  const heavySrc = join(work, "heavy");
  await mkdir(heavySrc, { recursive: true });
  await writeHandler(
    heavySrc,
    { type: "heavy", version: "1.0.0", timeout: { hardMs: 1500 } },
    { "index.js": `const hoard = []; for (;;) hoard.push(new Array(1e6).fill(1));\nexport default { execute: () => hoard.length };` },
  );
  await buildHandler(heavySrc, handlerDir);
  // ledger: stateful (a process per run), pauses with its state and resumes in a new process.
  const ledgerSrc = join(work, "ledger");
  await mkdir(ledgerSrc, { recursive: true });
  await writeHandler(
    ledgerSrc,
    { type: "ledger", version: "1.0.0", mode: "stateful", timeout: { softMs: 4000, hardMs: 10_000 }, checkpoint: { required: true, intervalMs: 5000 } },
    {
      "index.js": `export default { async execute(ctx) {
        const saved = await ctx.checkpoint.load();
        if (!saved) {
          await ctx.progress.update(30, "waiting for approval");
          await ctx.pause.wait({ reason: "approval", resumeToken: "ledger-" + ctx.task.executionId, state: { total: ctx.input.amount } });
        }
        await ctx.events.emit("ledger.done", { total: saved.total });
        await ctx.checkpoint.clear();
        return { total: saved.total, resume: ctx.resume ?? null, cleared: (await ctx.checkpoint.load()) === undefined };
      } };`,
    },
  );
  await buildHandler(ledgerSrc, handlerDir);
  worker = await mesh.startWorker({
    handlers: [],
    concurrency: 8,
    worker: {
      sandbox: {
        handlers: [
          { type: "greet", version: "1.0.0" },
          { type: "hostile", version: "2.0.0" },
          { type: "ledger", version: "1.0.0" },
          { type: "heavy", version: "1.0.0" },
        ],
        handlerDir,
        poolSize: 3,
        heapMb: 32,
      },
    },
  });
  for (const attack of ["require", "env", "loop", "memory", "metadata", "strays", "context-flood"]) {
    await mesh.putFlow({ id: `attack-${attack}`, steps: [{ id: "a", handler: "hostile", input: { attack }, retry: { maxAttempts: 1 } }] });
  }
  await mesh.putFlow({ id: "attack-issue-17", steps: [{ id: "a", handler: "hostile", input: { attack: "issue-17", port: "{% input.port %}" }, retry: { maxAttempts: 1 } }] });
  await mesh.putFlow({ id: "heavy", steps: [{ id: "h", handler: "heavy", input: {}, retry: { maxAttempts: 1 } }] });
  await mesh.putFlow({ id: "greet", steps: [{ id: "g", handler: "greet", input: { name: "{% input.name %}" } }], output: "{% steps.g.greeting %}" });
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("sandboxed handlers in a mesh", () => {
  it("hostile steps fail with clear codes while greet steps on the same worker complete; the worker serves on", async () => {
    const attacks = { require: "SANDBOX_VIOLATION", env: "SANDBOX_VIOLATION", loop: "TIMEOUT", memory: "OOM", metadata: "NETWORK_DENIED" };
    const hostile = await Promise.all(Object.keys(attacks).map(async (attack) => [attack, (await mesh.api.start(`attack-${attack}`, { input: {} })).executionId] as const));
    const greets = await Promise.all([1, 2, 3, 4].map(async (n) => (await mesh.api.start("greet", { input: { name: `n${n}` } })).executionId));

    for (const [n, executionId] of greets.entries()) expect((await mesh.waitForStatus(executionId, "completed")).output).toBe(`HELLO N${n + 1}!`);
    for (const [attack, executionId] of hostile) {
      const view = await mesh.waitForStatus(executionId, "failed");
      expect(view.error?.code, attack).toBe(attacks[attack as keyof typeof attacks]);
    }
    const again = await mesh.api.start("greet", { input: { name: "after" } });
    expect((await mesh.waitForStatus(again.executionId, "completed")).output).toBe("HELLO AFTER!");
    expect(worker.stats().failed).toBe(5);
  });

  it("issue 17's reproduction gets no process (its listener sees no connection); stray and context floods fail with SANDBOX_FLOOD; a bundle that exhausts its heap at load fails its tasks, the worker serves on", async () => {
    const connections: Socket[] = [];
    const listener = createServer((socket) => connections.push(socket));
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    try {
      const port = (listener.address() as AddressInfo).port;
      const repro = await mesh.api.start("attack-issue-17", { input: { port } });
      const strays = await mesh.api.start("attack-strays", { input: {} });
      const flood = await mesh.api.start("attack-context-flood", { input: {} });
      const heavy = await mesh.api.start("heavy", { input: {} });
      const greet = await mesh.api.start("greet", { input: { name: "through" } });
      expect((await mesh.waitForStatus(repro.executionId, "failed")).error?.code).toBe("HANDLER_FAILED");
      expect((await mesh.waitForStatus(strays.executionId, "failed")).error?.code).toBe("SANDBOX_FLOOD");
      // The killed run's result still carries the context writes that got in before the flood; at
      // 1 MiB each they can make it larger than NATS takes, and the runner then reports that instead.
      expect(["SANDBOX_FLOOD", "PAYLOAD_TOO_LARGE"]).toContain((await mesh.waitForStatus(flood.executionId, "failed")).error?.code);
      expect((await mesh.waitForStatus(heavy.executionId, "failed")).error).toMatchObject({ code: "HANDLER_LOAD_FAILED" });
      expect((await mesh.waitForStatus(greet.executionId, "completed")).output).toBe("HELLO THROUGH!");
      expect(connections).toHaveLength(0);
    } finally {
      listener.close();
    }
  });

  it("stateful: checkpoint, pause and resume cross the process boundary (each run in its own process)", async () => {
    await mesh.putFlow({ id: "ledger", steps: [{ id: "l", handler: "ledger", input: { amount: 42 } }] });
    const { executionId } = await mesh.api.start("ledger", { executionId: "ledger-1", input: {} });
    const parked = await mesh.waitForStatus(executionId, "waiting");
    expect(parked.steps[0]).toMatchObject({ status: "waiting", wait: { resumeToken: "ledger-ledger-1", reason: "approval" } });
    await mesh.api.resume("ledger-ledger-1", { approved: true });
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.output).toMatchObject({ total: 42, resume: { payload: { approved: true } }, cleared: true });
  });

  it("refuses to start with a bundle whose hash does not match its manifest", async () => {
    await writeFile(join(handlerDir, "hostile@2.0.0", "handler.js"), "var __fmHandler = { default: { execute: () => 'swapped' } };");
    const tampered = createWorker({
      nc: mesh.nc,
      log: createLogger({ name: "test", level: "silent" }),
      prefix: mesh.prefix,
      region: "us-east-1",
      handlers: [],
      sandbox: { handlers: [{ type: "hostile", version: "2.0.0" }], handlerDir },
    });
    const failure = await tampered.start().then(() => undefined, (err: unknown) => err);
    await tampered.close();
    expect(isFmError(failure, "HANDLER_INTEGRITY")).toBe(true);
    expect((failure as Error).message).toMatch(/sha256/);
  });
});
