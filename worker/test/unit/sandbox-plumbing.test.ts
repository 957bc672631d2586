/**
 * Sandboxed handlers' plumbing over the process boundary (context, progress, secrets, fetch,
 * waits), stateful mode (a process per task, soft/hard TTL, checkpoint interval), and the pure
 * parts: manifest rules, the address guard, the message budget, worker config.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HandlerManifest, HandlerRef } from "@flowmonkey/shared";
import { loadWorkerConfig } from "../../src/config.js";
import type { Outcome } from "../../src/runner/outcome.js";
import { LineReader } from "../../src/sandbox/line-reader.js";
import { MessageBudget } from "../../src/sandbox/message-budget.js";
import { isDeniedAddress } from "../../src/sandbox/network-guard.js";
import { makeTask, runHandler } from "../helpers.js";
import { bundleOf, sandboxFor, type TestSandbox } from "../sandbox-helpers.js";
import { BlockList } from "node:net";

const resultOf = (o: Outcome) => (o.kind === "result" ? o.result : undefined);
const failureOf = (o: Outcome) => (o.kind === "result" && "failure" in o.result ? o.result.failure : undefined);

describe("plumbing across the process boundary", () => {
  let sandbox: TestSandbox;
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer((req, res) => res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ path: req.url })));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hello`;
    const allow = new BlockList();
    allow.addAddress("127.0.0.1");
    const handler = `{
      async execute(ctx) {
        if (ctx.input.wait) return ctx.wait({ resumeOn: { event: "order.paid" }, reason: "waiting" });
        const before = await ctx.context.get("order.id");
        ctx.context.set("order.status", "seen");
        ctx.progress.update(40, "working");
        const res = await fetch(ctx.input.url);
        return { before, status: res.status, body: await res.json(), secret: ctx.secrets.get("api.key") ?? null, other: ctx.secrets.get("other") ?? null, task: ctx.task.stepId };
      }
    }`;
    sandbox = await sandboxFor(bundleOf(handler, { type: "plumb", inputs: { "api.key": { vault: true } } }), { network: { allow }, size: 1 });
  });
  afterAll(async () => {
    sandbox?.close();
    await new Promise((r) => server?.close(r));
  });

  it("reads and writes the context, reports progress, fetches an allowed address", async () => {
    const run = runHandler(sandbox.handler, makeTask({ type: "plumb", input: { url }, context: { order: { id: "o-1" } } }));
    const result = resultOf(await run.outcome);
    expect(result).toMatchObject({ outcome: "success", output: { before: "o-1", status: 201, body: { path: "/hello" }, secret: null, task: "step" } });
    expect(result?.contextUpdates).toEqual([{ op: "set", path: "order.status", value: "seen" }]);
    expect(run.published.some((s) => s.includes(".progress."))).toBe(true);
  });

  it("returns a wait the engine understands", async () => {
    const result = resultOf(await runHandler(sandbox.handler, makeTask({ type: "plumb", input: { wait: true } })).outcome);
    expect(result).toMatchObject({ outcome: "wait", wait: { resumeOn: { event: "order.paid" }, reason: "waiting" } });
  });
});

describe("stateful mode: a process per task", () => {
  const sandboxes: TestSandbox[] = [];
  afterAll(() => sandboxes.forEach((s) => s.close()));
  const stateful = async (handler: string, manifest: Record<string, unknown>) => {
    const s = await sandboxFor(bundleOf(handler, { type: "stateful", mode: "stateful", ...manifest }));
    sandboxes.push(s);
    return s;
  };

  it("passes its soft TTL with a warning event and finishes; the process is gone after the task", async () => {
    const s = await stateful(`{ async execute(ctx) { await new Promise((r) => setTimeout(r, 300)); return "done"; } }`, { timeout: { softMs: 100, hardMs: 5000 } });
    const run = runHandler(s.handler, makeTask({ type: "stateful" }));
    expect(resultOf(await run.outcome)).toMatchObject({ outcome: "success", output: "done" });
    expect(run.published.filter((subject) => subject.endsWith("sandbox.soft-ttl"))).toHaveLength(1);
    expect(s.source.stats()).toMatchObject({ total: 0, spawned: 1 });
  });

  it("is killed with CHECKPOINT_OVERDUE when it goes longer than its interval without a checkpoint", async () => {
    const s = await stateful(`{ async execute(ctx) { await new Promise((r) => setTimeout(r, 5000)); } }`, {
      timeout: { hardMs: 10_000 },
      checkpoint: { required: true, intervalMs: 200 },
    });
    expect(failureOf(await runHandler(s.handler, makeTask({ type: "stateful" })).outcome)).toMatchObject({ code: "CHECKPOINT_OVERDUE", retryable: true });
  });

  it("may run past the stateless TTL ceiling but not past its own hard TTL", async () => {
    expect(() => HandlerManifest.parse({ type: "x", version: "1", mode: "stateless", timeout: { hardMs: 120_000 } })).toThrow(/at most 60000/);
    expect(HandlerManifest.parse({ type: "x", version: "1", mode: "stateful", timeout: { hardMs: 120_000 } }).timeout.hardMs).toBe(120_000);
    const s = await stateful(`{ async execute() { for (;;) {} } }`, { timeout: { hardMs: 300 } });
    expect(failureOf(await runHandler(s.handler, makeTask({ type: "stateful" })).outcome)?.code).toBe("TIMEOUT");
  });
});

describe("the pure parts", () => {
  it.each([
    ["127.0.0.1", true], ["10.1.2.3", true], ["172.20.0.1", true], ["192.168.1.1", true], ["169.254.169.254", true], ["100.64.0.1", true],
    ["0.0.0.0", true], ["::1", true], ["::ffff:127.0.0.1", true], ["::ffff:169.254.169.254", true], ["::ffff:8.8.8.8", false], ["fd00:ec2::254", true], ["fe80::1", true],
    ["93.184.216.34", false], ["2606:4700::1111", false], ["8.8.8.8", false],
  ])("address %s denied: %s", (address, denied) => {
    expect(isDeniedAddress(address)).toBe(denied);
  });

  it("the message budget refuses bursts and too many events", () => {
    let now = 0;
    const budget = new MessageBudget({ perSecond: 3, events: 2 }, () => now);
    expect([budget.take("progress"), budget.take("progress"), budget.take("progress")]).toEqual([undefined, undefined, undefined]);
    expect(budget.take("progress")).toMatch(/3 messages in a second/);
    now = 1000;
    expect([budget.take("events.emit"), budget.take("events.emit")]).toEqual([undefined, undefined]);
    expect(budget.take("events.emit")).toMatch(/2 events.emit/);
  });

  it("the message budget counts bytes a second, context-write bytes a run, stray reports and requests in flight", () => {
    let now = 0;
    const budget = new MessageBudget({ bytesPerSecond: 1000, contextBytes: 1500, strays: 2, inFlight: 2 }, () => now);
    expect(budget.take("context.set", 600)).toBeUndefined();
    expect(budget.take("progress", 600)).toMatch(/of messages in a second/);
    now = 1000;
    expect(budget.take("context.merge", 800)).toBeUndefined();
    now = 2000;
    expect(budget.take("context.delete", 200)).toMatch(/of context writes in one run/);
    now = 3000;
    expect([budget.take("stray", 10), budget.take("stray", 10)]).toEqual([undefined, undefined]);
    expect(budget.take("stray", 10)).toMatch(/2 stray/);
    expect([budget.open(), budget.open()]).toEqual([undefined, undefined]);
    expect(budget.open()).toMatch(/2 requests in flight/);
    budget.close();
    budget.close();
    expect(budget.open()).toBeUndefined();
    const bytes = new MessageBudget({ inFlightBytes: 100 });
    expect(bytes.open(60)).toBeUndefined();
    expect(bytes.open(60)).toMatch(/of requests in flight/);
    bytes.close(60);
    bytes.close(60);
    expect(bytes.open(90)).toBeUndefined();
  });

  it("the line reader frames messages across chunks and refuses a line past its bound, finished or not", () => {
    const lines: string[] = [];
    const take = (text: string) => (lines.push(text), true);
    const reader = new LineReader(8);
    expect(reader.push(Buffer.from("ab\ncd"), take)).toBe(true);
    expect(reader.push(Buffer.from("é\n\n"), take)).toBe(true);
    expect(lines).toEqual(["ab", "cdé", ""]);
    expect(reader.push(Buffer.from("12345"), take)).toBe(true);
    expect(reader.held).toBe(5);
    expect(reader.push(Buffer.from("6789"), take)).toBe(false); // 9 bytes, no newline yet
    expect(new LineReader(4).push(Buffer.from("12345\n"), take)).toBe(false);
    expect(new LineReader(4).push(Buffer.from("1\n2\n"), () => false)).toBe(false);
  });

  it("manifests: type@version refs, required checkpoints need an interval, unknown fields are refused", () => {
    expect(HandlerRef.parse("resize@1.2.0")).toEqual({ type: "resize", version: "1.2.0" });
    expect(() => HandlerRef.parse("resize")).toThrow(/type@version/);
    expect(() => HandlerManifest.parse({ type: "x", version: "1", checkpoint: { required: true } })).toThrow(/interval/);
    expect(() => HandlerManifest.parse({ type: "x", version: "1", shell: true })).toThrow();
    expect(() => HandlerManifest.parse({ type: "x", version: "1", env: { "lower-case": "v" } })).toThrow();
    // NODE_OPTIONS could grant the sandbox process file or child-process permissions.
    for (const name of ["NODE_OPTIONS", "NODE_PATH", "LD_PRELOAD", "PATH"]) {
      expect(() => HandlerManifest.parse({ type: "x", version: "1", env: { [name]: "--allow-fs-read=*" } }), name).toThrow(/not allowed/);
    }
    expect(HandlerManifest.parse({ type: "x", version: "1", env: { TZ: "UTC" } }).env).toEqual({ TZ: "UTC" });
  });

  it("worker config: sandboxed handlers, handler dir, pool size and heap, named in errors", () => {
    const config = loadWorkerConfig({ env: { FM_SANDBOXED_HANDLERS: "resize@1.0.0, greet@2", FM_HANDLER_DIR: "/srv/handlers", FM_SANDBOX_POOL_SIZE: "4" } });
    expect(config).toMatchObject({ sandboxedHandlers: [{ type: "resize", version: "1.0.0" }, { type: "greet", version: "2" }], handlerDir: "/srv/handlers", sandboxPoolSize: 4, sandboxHeapMb: 64 });
    expect(() => loadWorkerConfig({ env: { FM_SANDBOXED_HANDLERS: "resize" } })).toThrow(/FM_SANDBOXED_HANDLERS/);
    expect(() => loadWorkerConfig({ env: { FM_SANDBOX_HEAP_MB: "8" } })).toThrow(/FM_SANDBOX_HEAP_MB/);
    expect(() => loadWorkerConfig({ env: { FM_SANDBOX_ALLOW_NETWORKS: "10.0.0.0/33" } })).toThrow(/FM_SANDBOX_ALLOW_NETWORKS/);
  });
});

describe("the process boundary under the vm context", () => {
  it("a sandbox process that gets past the context still cannot read files, spawn, start threads, eval or see the environment", async () => {
    const { fork } = await import("node:child_process");
    const { mkdtemp, writeFile, rm } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const { sandboxExecArgv } = await import("../../src/sandbox/sandbox-process.js");
    const dir = await mkdtemp(join(tmpdir(), "fm-probe-"));
    const script = join(dir, "probe.mjs");
    await writeFile(
      script,
      `const tryIt = async (f) => { try { await f(); return "allowed"; } catch (e) { return e.code ?? e.name; } };
       const fs = await import("node:fs"), cp = await import("node:child_process"), wt = await import("node:worker_threads");
       process.send({
         passwd: await tryIt(() => fs.readFileSync("/etc/passwd")),
         write: await tryIt(() => fs.writeFileSync("${join(dir, "x")}", "x")),
         spawn: await tryIt(() => cp.spawnSync("id")),
         worker: await tryIt(() => new wt.Worker("1", { eval: true })),
         eval: await tryIt(() => eval("1")),
         env: Object.keys(process.env),
         // --frozen-intrinsics: no getter can be planted on a host prototype (issue 17's trap for process and the next run).
         plantOnObjectPrototype: await tryIt(() => Object.defineProperty(Object.prototype, "resume", { get() { return 1; } })),
         plantOnPromise: await tryIt(() => { Promise.prototype.then = () => {}; }),
         frozen: [Object.prototype, Function.prototype, Array.prototype, Error.prototype, Promise.prototype].every(Object.isFrozen),
       });`,
    );
    const child = fork(script, [], { execArgv: sandboxExecArgv(script, 32), env: {}, stdio: ["ignore", "ignore", "ignore", "ipc"] });
    const report = await new Promise((resolve) => child.once("message", resolve));
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    expect(report).toEqual({
      passwd: "ERR_ACCESS_DENIED",
      write: "ERR_ACCESS_DENIED",
      spawn: "ERR_ACCESS_DENIED",
      worker: "ERR_ACCESS_DENIED",
      eval: "EvalError",
      env: [],
      plantOnObjectPrototype: "TypeError",
      plantOnPromise: "TypeError",
      frozen: true,
    });
  });
});
