import { FmError } from "@flowmonkey/shared";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { delay, echo, fail, httpRequest, transform } from "../../src/handlers/index.js";
import type { Outcome } from "../../src/runner/outcome.js";
import { makeTask, runHandler } from "../helpers.js";

async function run(handler: Parameters<typeof runHandler>[0], input: unknown) {
  return settled(await runHandler(handler, makeTask({ type: handler.type, input })).outcome);
}

function settled(outcome: Outcome) {
  if (outcome.kind !== "result") throw new Error(`expected a result, got ${outcome.kind}`);
  return outcome.result;
}

describe("transform", () => {
  it("evaluates a JSONata expression over data", async () => {
    const r = await run(transform, { expression: "{'msg': 'paid ' & order.id, 'total': $sum(items.price)}", data: { order: { id: "A1" }, items: [{ price: 2 }, { price: 3 }] } });
    expect(r).toMatchObject({ outcome: "success", output: { msg: "paid A1", total: 5 } });
  });

  it("no match is null, not a missing output", async () => {
    expect(await run(transform, { expression: "nothing.here", data: {} })).toMatchObject({ outcome: "success", output: null });
  });

  it.each([
    ["a syntax error", "{'a': "],
    ["an evaluation error", "$number('x') + $undefinedFunction()"],
  ])("%s is a non-retryable EXPRESSION_ERROR", async (_what, expression) => {
    const r = await run(transform, { expression, data: {} });
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "EXPRESSION_ERROR", retryable: false } });
  });

  it("is JSONata, not JavaScript: & concatenates, and JS globals do not exist", async () => {
    // As JavaScript, 'a' & 'b' is 0 and process.exit would run.
    expect(await run(transform, { expression: "'a' & 'b'", data: {} })).toMatchObject({ outcome: "success", output: "ab" });
    const r = await run(transform, { expression: "process.exit(1)", data: {} });
    expect(r).toMatchObject({ outcome: "success", output: null });
  });
});

describe("transform under hostile expressions", () => {
  /** Counts event-loop turns while `work` runs: before the bounded pool, a regex bomb counted none for seconds. */
  async function ticksDuring<T>(work: Promise<T>): Promise<{ result: T; ticks: number }> {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 50);
    try {
      return { result: await work, ticks };
    } finally {
      clearInterval(timer);
    }
  }

  it("a regex bomb fails EXPRESSION_ERROR at the time limit while the worker's event loop keeps turning", async () => {
    const bomb = run(transform, { expression: `$replace("${"a".repeat(34)}!", /(a+)+$/, "x")`, data: {} });
    const neighbour = run(transform, { expression: "$sum(n)", data: { n: [1, 2] } });
    const { result, ticks } = await ticksDuring(bomb);
    expect(result).toMatchObject({ outcome: "failure", failure: { code: "EXPRESSION_ERROR", retryable: false, message: expect.stringMatching(/time limit/) } });
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(await neighbour).toMatchObject({ outcome: "success", output: 3 });
  });

  it("a giant $pad fails EXPRESSION_ERROR instead of building the string here", async () => {
    const rssBefore = process.memoryUsage().rss;
    const r = await run(transform, { expression: '$pad("x", 500000000)', data: {} });
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "EXPRESSION_ERROR", message: expect.stringMatching(/larger than the/) } });
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
  });

  it("plain paths are answered in-thread, the same as before", async () => {
    expect(await run(transform, { expression: "order.id", data: { order: { id: "A1" } } })).toMatchObject({ outcome: "success", output: "A1" });
  });
});

describe("fail", () => {
  it("without input fails non-retryably with the default code", async () => {
    expect(await run(fail, undefined)).toMatchObject({ outcome: "failure", failure: { code: "HANDLER_FAILED", retryable: false } });
  });

  it("throws the code, message and retryability it is given", async () => {
    const r = await run(fail, { code: "PAYMENT_DOWN", message: "try later", retryable: true, retryAfterMs: 250 });
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "PAYMENT_DOWN", message: "try later", retryable: true, retryAfterMs: 250 } });
  });
});

describe("echo", () => {
  it("returns its input", async () => {
    const input = { a: [1, 2, { b: "c" }], d: null };
    expect(await run(echo, input)).toMatchObject({ outcome: "success", output: input });
  });
});

describe("delay", () => {
  it("waits the given time and reports progress on the way", async () => {
    const started = Date.now();
    const running = runHandler(delay, makeTask({ type: "delay", input: { ms: 250 } }));
    const r = settled(await running.outcome);
    expect(r).toMatchObject({ outcome: "success" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(245);
    expect(running.published.length).toBeGreaterThanOrEqual(1);
  });

  it("stops as soon as it is aborted", async () => {
    let aborted: unknown;
    const running = runHandler(delay, makeTask({ type: "delay", input: { ms: 60_000 } }));
    const started = Date.now();
    running.abort(new FmError("WORKER_SHUTDOWN", "stop"));
    const outcome = await running.outcome;
    if (outcome.kind === "abandoned") aborted = outcome.reason;
    expect(aborted).toMatchObject({ code: "WORKER_SHUTDOWN" });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("stops at the task timeout with TASK_TIMEOUT", async () => {
    const started = Date.now();
    const task = makeTask({ type: "delay", input: { ms: 60_000 }, config: { ...makeTask().config, timeoutMs: 150 } });
    const r = settled(await runHandler(delay, task).outcome);
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "TASK_TIMEOUT" } });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("rejects bad input", async () => {
    expect(await run(delay, { ms: -5 })).toMatchObject({ outcome: "failure", failure: { code: "INVALID_INPUT", retryable: false } });
  });
});

describe("http-request", () => {
  let server: Server;
  let base = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        if (req.url === "/slow") return void setTimeout(() => res.end("late"), 2000);
        if (req.url === "/missing") return void res.writeHead(404, { "content-type": "text/plain" }).end("nope");
        res.writeHead(200, { "content-type": "application/json; charset=utf-8", "x-test": "1" });
        res.end(JSON.stringify({ method: req.method, got: body === "" ? null : JSON.parse(body), type: req.headers["content-type"] ?? null }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("sends JSON and parses a JSON response", async () => {
    const r = await run(httpRequest, { url: `${base}/echo`, method: "post", body: { a: 1 } });
    expect(r).toMatchObject({
      outcome: "success",
      output: { status: 200, headers: { "x-test": "1" }, body: { method: "POST", got: { a: 1 }, type: "application/json" } },
    });
  });

  it("a non-2xx status is a successful step that carries the status", async () => {
    expect(await run(httpRequest, { url: `${base}/missing` })).toMatchObject({ outcome: "success", output: { status: 404, body: "nope" } });
  });

  it("no response at all is a retryable failure", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await run(httpRequest, { url: `http://127.0.0.1:${port}/` })).toMatchObject({ outcome: "failure", failure: { code: "UNAVAILABLE", retryable: true } });
  });

  it("its own timeout is a retryable TIMEOUT failure", async () => {
    expect(await run(httpRequest, { url: `${base}/slow`, timeoutMs: 100 })).toMatchObject({ outcome: "failure", failure: { code: "TIMEOUT", retryable: true } });
  });

  it("refuses non-http URLs", async () => {
    expect(await run(httpRequest, { url: "file:///etc/passwd" })).toMatchObject({ outcome: "failure", failure: { code: "INVALID_INPUT", retryable: false } });
  });
});
