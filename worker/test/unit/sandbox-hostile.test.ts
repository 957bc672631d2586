/**
 * The hostile-handler suite, in process (no servers): each hostile bundle runs in a real
 * sandbox process through the worker's runner (executeTask), is contained and fails with a
 * clear code; the pool replaces what died, and a normal task run at the same time on the same
 * pool succeeds. The test process (standing in for the worker) survives every case.
 */
import { BUNDLE_FILES, silentLogger, type VerifiedBundle } from "@flowmonkey/shared";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { BlockList, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createSandboxHost } from "../../src/sandbox/host.js";
import { SandboxProcess, type RunEnd } from "../../src/sandbox/sandbox-process.js";
import type { Outcome } from "../../src/runner/outcome.js";
import { makeTask, runHandler } from "../helpers.js";
import { bundleOf, sandboxFor, type TestSandbox } from "../sandbox-helpers.js";

const failureOf = (outcome: Outcome) => (outcome.kind === "result" && "failure" in outcome.result ? outcome.result.failure : undefined);
const outputOf = (outcome: Outcome) => (outcome.kind === "result" && outcome.result.outcome === "success" ? outcome.result.output : undefined);

// One stateless pool for every hostile case plus the normal handler: cases that kill their sandbox
// must leave the pool serving. The hard TTL is short so that the loops end fast.
const HOSTILE = `{
  async execute(ctx) {
    const attack = ctx.input.attack;
    switch (attack) {
      case "ok": await new Promise((r) => setTimeout(r, ctx.input.ms ?? 0)); return { ok: true, n: ctx.input.n, polluted: ({}).polluted ?? null, pushType: typeof [].push };
      case "require": return require("fs").readFileSync("/etc/passwd", "utf8");
      case "exit": process.exit(1); return;
      case "env": return process.env;
      case "import": return (await import("node:fs")).readFileSync("/etc/passwd", "utf8");
      case "escape": return ctx.constructor.constructor("return process")().env;
      case "escape-host": return setTimeout.constructor("return process")().pid;
      case "eval": return eval("1 + 1");
      case "spawn": return process.mainModule.require("child_process").spawnSync("id").stdout;
      case "interval": setInterval(() => {}, 1); return;
      case "loop": for (;;) {}
      case "async-loop": await Promise.resolve(); for (;;) {}
      case "loop-after-return": Promise.resolve().then(() => { for (;;) {} }); return { returned: true };
      case "memory": { const hoard = []; for (;;) hoard.push(new Array(1e6).fill(Math.random())); }
      case "pollute":
        Object.prototype.polluted = "yes";
        Array.prototype.push = () => 0;
        ctx.input.__proto__.inputPolluted = true;
        return { polluted: ({}).polluted };
      case "progress-flood": for (let i = 0; i < 100000; i++) ctx.progress.update(i % 100); await new Promise((r) => setTimeout(r, 50)); return;
      case "events-flood": for (let i = 0; i < 1000; i++) await ctx.events.emit("flood", { i }); return;
      case "fetch": return (await fetch(ctx.input.url)).status;
      case "garbage": return { fn: undefined, big: 1n };
      // Issue 17's reproduction, verbatim: a host-realm Error from setTimeout's cap, then a getter
      // on the host's Object.prototype that catches process when Node's rejection handling reads it.
      case "issue-17-repro": { await null;
        let e; const ids = [];
        try { for (let i = 0; i < 1001; i++) ids.push(setTimeout(() => {}, 6e4)); } catch (x) { e = x; } // the host throws
        ids.forEach((id) => clearTimeout(id));
        const hostObjectProto = Object.getPrototypeOf(Object.getPrototypeOf(e)); let proc;
        Object.defineProperty(hostObjectProto, "noDeprecation", { configurable: true, get() { if (this && this.pid) proc = this; } });
        const p = Promise.reject(0); await new Promise((r) => setTimeout(r, 30)); p.catch(() => {}); await new Promise((r) => setTimeout(r, 30));
        proc.getBuiltinModule("net").connect(ctx.input.port, "127.0.0.1").write("hi"); // or proc.kill(proc.ppid, "SIGKILL")
        return "connected"; }
      // Each route into the host realm, reporting what it reached instead of using it.
      case "host-error": { let e; const ids = [];
        try { for (let i = 0; i < 1001; i++) ids.push(setTimeout(() => {}, 6e4)); } catch (x) { e = x; }
        ids.forEach((id) => clearTimeout(id));
        let top = e; while (Object.getPrototypeOf(top) !== null) top = Object.getPrototypeOf(top);
        return { caught: e !== undefined, ours: e instanceof Error && top === Object.prototype, code: e.code }; }
      case "then-hijack": { const then = Promise.prototype.then; let foreign = 0;
        Promise.prototype.then = function (a, b) { for (const f of [a, b]) if (typeof f === "function" && !(f instanceof Function)) foreign++; return then.call(this, a, b); };
        await new Promise((r) => setTimeout(r, 30));
        Promise.prototype.then = then;
        return { foreign }; }
      case "global-ctor": return {
        ctor: Object.getPrototypeOf(globalThis.constructor) === Function.prototype,
        chain: Object.getPrototypeOf(Object.getPrototypeOf(globalThis)) === Object.prototype,
        hasOwn: globalThis.hasOwnProperty === Object.prototype.hasOwnProperty,
        proto: globalThis.__proto__ === Object.getPrototypeOf(globalThis) };
      case "import-realm": try { await import("node:fs"); return "imported"; } catch (e) { return { ours: e instanceof Error, code: e.code ?? null }; }
      case "stack-edge": { let caught = 0, foreign = 0;
        const f = () => { try { f(); } catch {} try { clearTimeout(setTimeout(() => {}, 1)); } catch (e) { caught++; if (!(e instanceof Error)) foreign++; } };
        f(); return { caught: caught > 0, foreign }; }
      case "plant": globalThis.planted = ctx.input.secret; Object.prototype.plantedProto = ctx.input.secret; Object.defineProperty(Object.prototype, "resume", { configurable: true, get() { return "stolen"; } }); return "planted";
      case "look": return { planted: typeof planted === "undefined" ? null : planted, proto: ({}).plantedProto ?? null, resume: ({}).resume ?? null, ctxResume: ctx.resume ?? null };
      case "rejection-flood": for (let b = 0; b < 200; b++) { for (let i = 0; i < 1000; i++) Promise.reject(new Error("stray " + i)); await new Promise((r) => setTimeout(r, 1)); } return "survived";
      case "timer-throw-flood": for (let i = 0; i < 900; i++) setTimeout(() => { throw new Error("boom " + i); }, 0); await new Promise((r) => setTimeout(r, 3000)); return "survived";
      case "few-strays": Promise.reject(new Error("one")); setTimeout(() => { throw new Error("two"); }, 0); await new Promise((r) => setTimeout(r, 50)); return "fine";
      // 1 MiB at ~50/s: paced so that the worker usually keeps up and its bytes budget trips (on a
      // loaded box the sandbox's own 8 MiB unsent cap may trip first: a flood either way).
      case "context-flood": { const mb = "x".repeat(1 << 20); for (let i = 0; i < 2000; i++) { ctx.context.set("k" + (i % 4), mb); await new Promise((r) => setTimeout(r, 20)); } return "survived"; }
      case "huge-message": ctx.context.set("k", "x".repeat(5 << 20)); await new Promise((r) => setTimeout(r, 50)); return "survived";
    }
    throw new Error("unknown attack " + attack);
  }
}`;

let sandbox: TestSandbox;
// The hard TTL is the loops' verdict, but it also bounds the floods: on a loaded 2-core CI box a
// sandbox once sent fewer than 500 progress messages within a 1.5 s TTL and met TIMEOUT instead
// of SANDBOX_FLOOD. 4 s leaves the flood room to be caught as what it is.
beforeAll(async () => {
  sandbox = await sandboxFor(bundleOf(HOSTILE, { type: "hostile", timeout: { hardMs: 4000 } }), { size: 3, heapMb: 24 });
});
afterAll(() => sandbox?.close());

const run = (input: Record<string, unknown>) => runHandler(sandbox.handler, makeTask({ type: "hostile", input })).outcome;

describe("no host-realm object reaches handler code (issue 17)", () => {
  it("the issue's reproduction gets no process: it fails, and its loopback listener sees no connection", async () => {
    const connections: Socket[] = [];
    const listener = createServer((socket) => connections.push(socket));
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    try {
      const port = (listener.address() as AddressInfo).port;
      const [hostile, normal] = await Promise.all([run({ attack: "issue-17-repro", port }), run({ attack: "ok", ms: 20, n: 1 })]);
      // The getter went on the context's own Object.prototype: proc stays undefined.
      expect(failureOf(hostile)).toMatchObject({ code: "HANDLER_FAILED", message: expect.stringMatching(/getBuiltinModule|undefined/) });
      expect(outputOf(normal)).toMatchObject({ ok: true, n: 1 });
      expect(connections).toHaveLength(0);
    } finally {
      listener.close();
    }
  });

  it.each([
    ["host-error", { caught: true, ours: true, code: "SANDBOX_VIOLATION" }],
    ["then-hijack", { foreign: 0 }],
    ["global-ctor", { ctor: true, chain: true, hasOwn: true, proto: true }],
    ["import-realm", { ours: true, code: "SANDBOX_VIOLATION" }],
    ["stack-edge", { caught: true, foreign: 0 }],
  ])("%s: every object the handler reaches is its own realm's", async (attack, expected) => {
    expect(outputOf(await run({ attack }))).toEqual(expected);
  });

  it("what a task plants on its globals and prototypes is gone for the next tasks, their inputs untouched", async () => {
    expect(outputOf(await run({ attack: "plant", secret: "s3cret" }))).toBe("planted");
    const looks = await Promise.all([1, 2, 3].map(() => run({ attack: "look" })));
    for (const look of looks) expect(outputOf(look)).toEqual({ planted: null, proto: null, resume: null, ctxResume: null });
  });
});

describe("the worker cannot be taken down by what a sandbox sends", () => {
  it.each([
    ["rejection-flood", ["SANDBOX_FLOOD"], /more than 100 stray errors|100 stray messages/],
    ["timer-throw-flood", ["SANDBOX_FLOOD"], /more than 100 stray errors|100 stray messages/],
    // Whichever budget a slow or loaded machine reaches first: the rate, the pipe, the per-run
    // context total, or (seen once in CI with both cores busy) the child's own heap, filled by
    // writes queued while the host was slow to read: the child is killed either way.
    ["context-flood", ["SANDBOX_FLOOD", "OOM"], /16 MiB of messages in a second|faster than the worker reads|32 MiB of context writes in one run|ran out of memory/],
  ])("%s fails (%s) while a normal task on the same pool succeeds", async (attack, codes, message) => {
    const before = process.cpuUsage();
    const [hostile, normal] = await Promise.all([run({ attack }), run({ attack: "ok", ms: 20, n: 1 })]);
    const cpu = process.cpuUsage(before);
    const failure = failureOf(hostile) as { code: string; message: string };
    expect(codes).toContain(failure.code);
    expect(failure.message).toMatch(message);
    expect(outputOf(normal)).toMatchObject({ ok: true, n: 1 });
    // 200k stray reports once cost the worker ~1.3 s of CPU; now it reads at most a few hundred messages.
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(1000);
    expect(outputOf(await run({ attack: "ok", n: 2 }))).toMatchObject({ ok: true, n: 2 });
  });

  it("a few stray errors are reported and the task succeeds", async () => {
    expect(outputOf(await run({ attack: "few-strays" }))).toBe("fine");
  });

  it("one message over 4 MiB is refused in the sandbox (PAYLOAD_TOO_LARGE), never sent", async () => {
    expect(failureOf(await run({ attack: "huge-message" }))).toMatchObject({ code: "PAYLOAD_TOO_LARGE", retryable: false });
  });
});

describe("hostile handlers are contained, each with a clear code", () => {
  it.each([
    ["require", "SANDBOX_VIOLATION", /require is not available/],
    ["exit", "SANDBOX_VIOLATION", /process is not available/],
    ["env", "SANDBOX_VIOLATION", /process is not available/],
    ["import", "SANDBOX_VIOLATION", /./],
    ["escape", "SANDBOX_VIOLATION", /Code generation from strings disallowed/],
    ["escape-host", "SANDBOX_VIOLATION", /Code generation from strings disallowed/],
    ["eval", "SANDBOX_VIOLATION", /./],
    ["spawn", "SANDBOX_VIOLATION", /process is not available/],
    ["interval", "SANDBOX_VIOLATION", /setInterval is not available/],
    ["loop", "TIMEOUT", /hard TTL of 4000 ms/],
    ["async-loop", "TIMEOUT", /hard TTL/],
    ["progress-flood", "SANDBOX_FLOOD", /messages in a second|faster than the worker reads/],
    ["events-flood", "SANDBOX_FLOOD", /events.emit/],
  ])("%s fails with %s while a normal task on the same pool succeeds", async (attack, code, message) => {
    const [hostile, normal] = await Promise.all([run({ attack }), run({ attack: "ok", ms: 20, n: 1 })]);
    expect(failureOf(hostile)).toMatchObject({ code, message: expect.stringMatching(message) });
    expect(outputOf(normal)).toMatchObject({ ok: true, n: 1 });
    // The pool still serves after the case (a killed sandbox was replaced).
    expect(outputOf(await run({ attack: "ok", n: 2 }))).toMatchObject({ ok: true, n: 2 });
  });

  it.each(["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]/", "http://localhost:9/"])(
    "fetch %s is refused with NETWORK_DENIED (after DNS resolution for names)",
    async (url) => {
      expect(failureOf(await run({ attack: "fetch", url }))).toMatchObject({ code: "NETWORK_DENIED", retryable: false });
    },
  );

  it("prototype pollution dies with its task: the next task, and the worker, see clean prototypes", async () => {
    expect(outputOf(await run({ attack: "pollute" }))).toEqual({ polluted: "yes" });
    const runs = await Promise.all([1, 2, 3].map((n) => run({ attack: "ok", n })));
    for (const r of runs) expect(outputOf(r)).toMatchObject({ polluted: null, pushType: "function" });
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(({} as Record<string, unknown>)["inputPolluted"]).toBeUndefined();
  });

  it("a loop queued behind the return is still this task's: it fails with TIMEOUT, and the next tasks run", async () => {
    expect(failureOf(await run({ attack: "loop-after-return" }))?.code).toBe("TIMEOUT");
    const next = await Promise.all([1, 2, 3, 4].map((n) => run({ attack: "ok", n })));
    expect(next.map(outputOf)).toMatchObject([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
  });

  it("a memory bomb fails with OOM at the heap limit; the pool serves on", async () => {
    const [hostile, normal] = await Promise.all([run({ attack: "memory" }), run({ attack: "ok", ms: 20, n: 1 })]);
    expect(failureOf(hostile)).toMatchObject({ code: "OOM", retryable: false });
    expect(outputOf(normal)).toMatchObject({ ok: true, n: 1 });
    expect(outputOf(await run({ attack: "ok", n: 2 }))).toMatchObject({ ok: true, n: 2 });
  });

  it("an output that is not JSON fails the task, not the worker", async () => {
    expect(failureOf(await run({ attack: "garbage" }))?.code).toBe("HANDLER_FAILED");
  });
});

describe("a second pool with small limits: context bytes a run, fetch sockets, fetch timeouts", () => {
  const LIMITED = `{
    async execute(ctx) {
      switch (ctx.input.attack) {
        case "context-total": { const half = "y".repeat(512 << 10); for (let i = 0; i < 40; i++) { ctx.context.set("k", half); await new Promise((r) => setTimeout(r, 40)); } return "survived"; }
        case "fetch-many": {
          const codes = [];
          for (let i = 0; i < 100; i++) fetch(ctx.input.url).then(() => codes.push("ok"), (e) => codes.push(e.code));
          await new Promise((r) => setTimeout(r, 300));
          return { refused: codes.filter((c) => c === "NETWORK_DENIED").length, settled: codes.length };
        }
        case "fetch-one": try { await fetch(ctx.input.url); return "answered"; } catch (e) { return { code: e.code, message: e.message }; }
      }
    }
  }`;
  let limited: TestSandbox;
  let slow: Server;
  let url: string;
  const open = new Set<Socket>();
  let most = 0;
  beforeAll(async () => {
    limited = await sandboxFor(bundleOf(LIMITED, { type: "limited", timeout: { hardMs: 10_000 } }), {
      size: 1,
      heapMb: 32,
      limits: { contextBytes: 4 << 20 },
      network: { allow: loopback(), timeoutMs: 800 },
    });
    // A server that accepts and never answers.
    slow = createHttpServer(() => {});
    slow.on("connection", (socket) => {
      open.add(socket);
      most = Math.max(most, open.size);
      socket.on("close", () => open.delete(socket));
    });
    await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/slow`;
  });
  afterAll(async () => {
    limited?.close();
    slow?.closeAllConnections();
    await new Promise((resolve) => slow?.close(resolve));
  });
  const runLimited = (input: Record<string, unknown>) => runHandler(limited.handler, makeTask({ type: "limited", input })).outcome;

  it("context writes past the run's bytes are a flood, however slowly they come", async () => {
    expect(failureOf(await runLimited({ attack: "context-total" }))).toMatchObject({ code: "SANDBOX_FLOOD", message: expect.stringMatching(/4 MiB of context writes in one run/) });
  });

  it("a task holds at most 8 fetch sockets; the rest are refused; all are closed when the task ends", async () => {
    most = 0;
    const output = outputOf(await runLimited({ attack: "fetch-many", url }));
    expect(output).toMatchObject({ refused: 92 });
    expect(most).toBeLessThanOrEqual(8);
    // The task is over (well before the fetch timeout): the worker has aborted its fetches.
    await vi.waitFor(() => expect(open.size).toBe(0), { timeout: 600, interval: 20 });
  });

  it("a fetch that gets no answer fails with TIMEOUT at the per-request timeout, its socket closed", async () => {
    const started = performance.now();
    expect(outputOf(await runLimited({ attack: "fetch-one", url }))).toMatchObject({ code: "TIMEOUT", message: expect.stringMatching(/800 ms/) });
    expect(performance.now() - started).toBeGreaterThanOrEqual(700);
    await vi.waitFor(() => expect(open.size).toBe(0), { timeout: 2000, interval: 20 });
  });
});

describe("a bundle that fails at load fails its tasks, not the worker", () => {
  it.each([
    ["its top level throws", `(() => { throw new Error("top-level boom"); })()`, /top-level boom/],
    ["its top level exhausts the heap", `(() => { const a = []; for (;;) a.push(new Array(1e6).fill(1)); })()`, /died while loading|OOM/],
    ["it does not compile", `{ execute() { return 1 } ) (`, /does not load/],
  ])("%s: HANDLER_LOAD_FAILED, and the worker's sandbox host starts and serves its other handlers", async (_case, handler, message) => {
    const dir = await mkdtemp(join(tmpdir(), "fm-load-"));
    const host = createSandboxHost(
      { handlers: [{ type: "broken", version: "1.0.0" }, { type: "fine", version: "1.0.0" }], handlerDir: dir, poolSize: 1, heapMb: 24, memoryMb: 256 },
      silentLogger(),
    );
    try {
      await writeBundle(dir, bundleOf(handler, { type: "broken" }));
      await writeBundle(dir, bundleOf(`{ execute: (ctx) => ({ fine: ctx.input.n }) }`, { type: "fine" }));
      await host.start(); // resolves: the broken bundle is logged, not thrown
      const broken = await runHandler(host.handlers.get("broken")!, makeTask({ type: "broken", input: {} })).outcome;
      expect(failureOf(broken)).toMatchObject({ code: "HANDLER_LOAD_FAILED", retryable: false, message: expect.stringMatching(message) });
      const fine = await runHandler(host.handlers.get("fine")!, makeTask({ type: "fine", input: { n: 7 } })).outcome;
      expect(outputOf(fine)).toEqual({ fine: 7 });
    } finally {
      host.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function loopback(): BlockList {
  const list = new BlockList();
  list.addSubnet("127.0.0.0", 8, "ipv4");
  return list;
}

async function writeBundle(dir: string, bundle: VerifiedBundle): Promise<void> {
  const at = join(dir, `${bundle.manifest.type}@${bundle.manifest.version}`);
  await mkdir(at, { recursive: true });
  await writeFile(join(at, BUNDLE_FILES.manifest), JSON.stringify(bundle.manifest));
  await writeFile(join(at, BUNDLE_FILES.code), bundle.code);
}

describe("a sandbox that owns its process cannot take the worker's memory through its channel", () => {
  // Stands in for a handler that reached its process: a script of our own speaks on the sandbox's
  // channels (fd 3 in, fd 4 out), past every check child.ts makes. The launcher prefix runs it
  // in place of the sandbox (sh ignores the arguments the worker appends).
  const rogue = (onRun: string) => `
    import { Socket } from "node:net";
    const out = new Socket({ fd: 4, readable: false, writable: true });
    const inn = new Socket({ fd: 3, readable: true, writable: false });
    inn.setEncoding("utf8");
    let text = "";
    out.write('0|{"t":"hello"}\\n');
    inn.on("data", (chunk) => {
      const lines = (text + chunk).split("\\n"); text = lines.pop();
      for (const line of lines) {
        const m = JSON.parse(line);
        if (m.t === "init") out.write('0|{"t":"ready"}\\n');
        if (m.t === "run") { const run = m.run; ${onRun} }
      }
    });
    inn.on("end", () => process.exit(0));`;

  async function runRogue(onRun: string): Promise<RunEnd> {
    const dir = await mkdtemp(join(tmpdir(), "fm-rogue-"));
    const script = join(dir, "rogue.mjs");
    await writeFile(script, rogue(onRun));
    const sandbox = await SandboxProcess.spawn({ code: "", filename: "rogue@1.0.0", heapMb: 64, env: {}, launcher: ["/bin/sh", "-c", `exec "${process.execPath}" "${script}"`, "sh"], log: silentLogger() });
    try {
      const bridge = { request: async () => undefined, note: () => {}, stray: () => {} };
      return await sandbox.run({ input: {}, task: {}, secrets: {} }, bridge, {}).end;
    } finally {
      sandbox.kill();
      await sandbox.exited;
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("an endless message (no newline, 1 GiB offered) is cut at 4 MiB: SANDBOX_FLOOD", async () => {
    const before = process.memoryUsage().rss;
    const end = await runRogue(`const mb = "x".repeat(1 << 20); out.write(run + '|{"t":"note","op":"log","args":{"level":"info","msg":"'); let n = 0; const more = () => { while (n < 1024 && out.write(mb)) n++; if (n < 1024) out.once("drain", more); }; more();`);
    expect(end).toMatchObject({ kind: "killed", error: { code: "SANDBOX_FLOOD", message: expect.stringMatching(/longer than/) } });
    // Node's IPC channel would have held all of it; the reader holds at most one message.
    expect(process.memoryUsage().rss - before).toBeLessThan(256 << 20);
  });

  it("valid messages sent past every check child.ts makes are still counted: SANDBOX_FLOOD", async () => {
    const end = await runRogue(`const v = "x".repeat(1 << 20); const line = run + '|' + JSON.stringify({ t: "note", op: "context.set", args: { path: "k", value: v } }) + "\\n"; for (let i = 0; i < 40; i++) out.write(line);`);
    expect(end).toMatchObject({ kind: "killed", error: { code: "SANDBOX_FLOOD", message: expect.stringMatching(/16 MiB of messages in a second/) } });
  });
});
