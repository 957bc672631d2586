/**
 * The hostile-handler suite, in process (no servers): each hostile bundle runs in a real
 * sandbox process through the worker's runner (executeTask), is contained and fails with a
 * clear code; the pool replaces what died, and a normal task run at the same time on the same
 * pool succeeds. The test process (standing in for the worker) survives every case.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
