/**
 * Issue 18, items 2 and 3: hostile `{% %}` expressions in step inputs (a backtracking regex, a
 * 500-million-character `$pad`, unbounded loops) and in transform tasks. Each fails its step
 * with EXPRESSION_ERROR — never UNAVAILABLE — while the engine keeps answering fm.api.health and
 * other executions go on; the engine's memory does not balloon. Before the bounded evaluator
 * pool, the regex held this process's event loop for a minute and the $pad took ~1.6 GB.
 */
import { describe, expect, it } from "vitest";
import { createApiClient, type ExecutionView } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

/** Catastrophic backtracking: ~2^30 steps, about a minute in-thread. */
const REGEX_BOMB = `$replace("${"a".repeat(30)}!", /(a+)+$/, "x")`;
/** An answer slower than this means the engine's event loop is stalled (normal: a few ms). */
const HEALTH_DEADLINE_MS = 2000;

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo", "transform"] }] }));

function stepError(view: ExecutionView, stepId: string) {
  return view.steps.find((s) => s.stepId === stepId)?.error;
}

/**
 * Asks fm.api.health over and over until `work` settles; every answer must come within
 * HEALTH_DEADLINE_MS (a stalled engine misses it and the request fails).
 */
async function healthWhile<T>(work: Promise<T>): Promise<{ result: T; answers: number }> {
  const api = createApiClient(mesh.nc, { prefix: mesh.prefix, timeoutMs: HEALTH_DEADLINE_MS });
  let settled = false;
  let answers = 0;
  const polling = (async () => {
    while (!settled) {
      await api.health();
      answers++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    const result = await work;
    return { result, answers };
  } finally {
    settled = true;
    await polling;
  }
}

describe("hostile expressions in step inputs", () => {
  it("a regex bomb fails its step with EXPRESSION_ERROR while health keeps answering and other executions complete", async () => {
    await mesh.putFlow({ id: "regex-bomb", steps: [{ id: "bomb", handler: "echo", input: { v: `{% ${REGEX_BOMB} %}` } }] });
    await mesh.putFlow({ id: "neighbour", steps: [{ id: "greet", handler: "echo", input: { msg: "{% 'hello ' & input.name %}" } }] });

    const bombRun = (async () => {
      const { executionId } = await mesh.api.start("regex-bomb", { input: {} });
      return mesh.waitForStatus(executionId, ["failed", "completed"]);
    })();
    const neighbours = Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const { executionId } = await mesh.api.start("neighbour", { input: { name: `n${i}` } });
        return mesh.waitForStatus(executionId, ["failed", "completed"]);
      }),
    );
    const { result: view, answers } = await healthWhile(bombRun);

    expect(view.status).toBe("failed");
    expect(stepError(view, "bomb")).toMatchObject({ code: "EXPRESSION_ERROR", message: expect.stringMatching(/time limit/) });
    // The bomb ran ~1.1 s before its process was killed; health was asked throughout.
    expect(answers).toBeGreaterThanOrEqual(3);
    for (const [i, n] of (await neighbours).entries()) expect(n).toMatchObject({ status: "completed", output: { msg: `hello n${i}` } });
  });

  it("a 500-million-character $pad fails EXPRESSION_ERROR (not UNAVAILABLE) and the engine's memory does not balloon", async () => {
    await mesh.putFlow({
      id: "pad-bomb",
      steps: [
        { id: "pad", handler: "echo", dependsOn: [], input: { v: '{% $pad("x", 500000000) %}' } },
        { id: "upper", handler: "echo", dependsOn: [], input: { v: '{% $uppercase($pad("x", 500000000)) %}' } },
      ],
    });
    const rssBefore = process.memoryUsage().rss;
    const { result: view } = await healthWhile(
      (async () => {
        const { executionId } = await mesh.api.start("pad-bomb", { input: {} });
        return mesh.waitForStatus(executionId, ["failed", "completed"]);
      })(),
    );
    expect(view.status).toBe("failed");
    const errors = ["pad", "upper"].map((id) => stepError(view, id)).filter((e) => e !== undefined);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    for (const error of errors) expect(error).toMatchObject({ code: "EXPRESSION_ERROR", message: expect.stringMatching(/limit/) });
    // Before: ~1.6 GB in this process. The strings now live (briefly) in an evaluator process.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it.each([
    ["unbounded recursion in a `when`", { when: "{% ($f := function($n){ $f($n + 1) }; $f(0)) %}", input: {} }],
    ["$join of ten million items", { input: { v: '{% $join([1..10000000].$string(), ",") %}' } }],
    ["string doubling in a loop", { input: { v: '{% $reduce([1..40], function($acc, $v){ $acc & $acc }, "x") %}' } }],
    ["deep recursion", { input: { v: "{% ($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000)) %}" } }],
  ])("%s fails its step with EXPRESSION_ERROR", async (_what, step) => {
    const flowId = `class-${Math.random().toString(36).slice(2, 8)}`;
    await mesh.putFlow({ id: flowId, steps: [{ id: "s", handler: "echo", ...step }] });
    const { executionId } = await mesh.api.start(flowId, { input: {} });
    const view = await mesh.waitForStatus(executionId, ["failed", "completed"]);
    expect(view.status).toBe("failed");
    expect(stepError(view, "s")).toMatchObject({ code: "EXPRESSION_ERROR", message: expect.stringMatching(/limit/) });
  });
});

describe("hostile expressions in transform tasks", () => {
  it("a regex bomb fails the transform step with EXPRESSION_ERROR while an echo flow completes meanwhile", async () => {
    await mesh.putFlow({ id: "transform-bomb", steps: [{ id: "t", handler: "transform", input: { expression: REGEX_BOMB, data: {} } }] });
    await mesh.putFlow({ id: "plain-echo", steps: [{ id: "e", handler: "echo", input: "{% input %}" }] });
    const { executionId } = await mesh.api.start("transform-bomb", { input: {} });
    const echoed = (async () => {
      const started = await mesh.api.start("plain-echo", { input: { ok: true } });
      return mesh.waitForStatus(started.executionId, ["failed", "completed"]);
    })();
    const { result: view } = await healthWhile(mesh.waitForStatus(executionId, ["failed", "completed"]));
    expect(view.status).toBe("failed");
    expect(stepError(view, "t")).toMatchObject({ code: "EXPRESSION_ERROR", message: expect.stringMatching(/time limit/) });
    expect(await echoed).toMatchObject({ status: "completed", output: { ok: true } });
  });
});
