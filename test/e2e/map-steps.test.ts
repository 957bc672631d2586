/**
 * Map steps: a step with `map:` runs its handler once per item of a list known only at run
 * time, each item its own task (own attempts, retries, dead letter), at most `concurrency` at
 * a time; its output is the items' outputs in item order. Real nats-server and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { decode, Progress } from "@flowmonkey/shared";
import { defineHandler, NonRetryableFailure, RetryableFailure } from "@flowmonkey/worker";
import { z } from "zod";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const db = useTestDatabase();
let mesh: TestMesh;
let pool: pg.Pool;

/** Items in flight at once, per execution, as the handler saw them. */
const inFlight = new Map<string, { now: number; max: number }>();
/** Attempts each item's task had, keyed `<executionId>/<index>`. */
const attemptsSeen = new Map<string, number[]>();

const square = defineHandler({
  type: "square",
  version: "1",
  input: z.object({ n: z.number(), index: z.number(), failOn: z.number().nullish(), flakyOn: z.number().nullish() }),
  async execute(ctx) {
    const { n, index, failOn, flakyOn } = ctx.input;
    const seen = attemptsSeen.get(`${ctx.task.executionId}/${index}`) ?? [];
    seen.push(ctx.task.attempt);
    attemptsSeen.set(`${ctx.task.executionId}/${index}`, seen);
    const gauge = inFlight.get(ctx.task.executionId) ?? { now: 0, max: 0 };
    inFlight.set(ctx.task.executionId, gauge);
    gauge.now++;
    gauge.max = Math.max(gauge.max, gauge.now);
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (failOn === n) throw new NonRetryableFailure("BAD_ITEM", `item ${n} is bad`);
      if (flakyOn === n && ctx.task.attempt === 1) throw new RetryableFailure("FLAKY", `item ${n} flaked`);
      return { n, square: n * n, index };
    } finally {
      gauge.now--;
    }
  },
});

/** Saves a checkpoint and reads it back: each item must see only its own. */
const remember = defineHandler({
  type: "remember",
  version: "1",
  input: z.object({ value: z.string() }),
  async execute(ctx) {
    const before = await ctx.checkpoint.load();
    await ctx.checkpoint.save({ value: ctx.input.value });
    await new Promise((resolve) => setTimeout(resolve, 30));
    return { before: before ?? null, after: await ctx.checkpoint.load() };
  },
});

const mapOf = (items: string, extra: { concurrency?: number; maxItems?: number; tolerateFailures?: number } = {}) => ({ items, ...extra });

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: db.url, workers: [] });
  await mesh.startWorker({ handlers: ["echo", "delay", square, remember], concurrency: 32 });
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const squares = (map: ReturnType<typeof mapOf>, retry?: { maxAttempts: number; initialDelayMs: number; jitter: boolean }) => ({
    id: "sq",
    handler: "square",
    map,
    input: { n: "{% item %}", index: "{% index %}", failOn: "{% input.failOn %}", flakyOn: "{% input.flakyOn %}" },
    ...(retry ? { retry } : {}),
  });
  await mesh.putFlow({
    id: "map-squares",
    steps: [
      squares(mapOf("{% input.numbers %}", { concurrency: 2 }), { maxAttempts: 2, initialDelayMs: 10, jitter: false }),
      { id: "after", handler: "echo", input: { count: "{% $count(steps.sq) %}" } },
    ],
    output: "{% steps.sq %}",
  });
  await mesh.putFlow({ id: "map-tolerant", steps: [squares(mapOf("{% input.numbers %}", { concurrency: 4, tolerateFailures: 1 }))], output: "{% steps.sq %}" });
  await mesh.putFlow({ id: "map-capped", steps: [squares(mapOf("{% input.numbers %}", { maxItems: 3 }))] });
  await mesh.putFlow({
    id: "map-checkpoints",
    steps: [{ id: "keep", handler: "remember", map: mapOf("{% input.values %}", { concurrency: 3 }), input: { value: "{% item %}" } }],
    output: "{% steps.keep %}",
  });
  await mesh.putFlow({ id: "say-hi", steps: [{ id: "say", handler: "echo", input: { said: "{% 'hi ' & input.name %}" } }] });
  await mesh.putFlow({ id: "map-children", steps: [{ id: "each", flow: "say-hi", map: mapOf("{% input.names %}", { concurrency: 2 }), input: { name: "{% item %}" } }], output: "{% steps.each %}" });
  await mesh.putFlow({ id: "nap-long", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
  await mesh.putFlow({ id: "map-naps", steps: [{ id: "each", flow: "nap-long", map: mapOf("{% [1, 2, 3] %}", { concurrency: 2 }) }] });
  await mesh.putFlow({
    id: "map-many",
    steps: [{ id: "each", handler: "echo", map: mapOf("{% [1..input.n] %}", { concurrency: 64, maxItems: 5000 }), input: { i: "{% index %}" } }],
    output: "{% $count(steps.each) %}",
  });
});

afterAll(async () => {
  await pool?.end();
  await mesh?.close();
});

describe("map steps", () => {
  it("runs the handler once per item, at most `concurrency` at a time; the output is in item order", async () => {
    const numbers = [3, 1, 4, 1, 5, 9, 2, 6];
    const { executionId } = await mesh.api.start("map-squares", { input: { numbers } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect(done.output).toEqual(numbers.map((n, index) => ({ n, square: n * n, index })));
    expect(inFlight.get(executionId)!.max).toBeLessThanOrEqual(2);
    const step = done.steps.find((s) => s.stepId === "sq")!;
    expect(step.map).toEqual({ total: numbers.length, done: numbers.length, failed: 0, running: 0 });
    // The step's dependents see the whole array.
    expect(done.steps.find((s) => s.stepId === "after")!.output).toEqual({ count: numbers.length });
    // Each item ran once: its own task.
    for (const index of numbers.keys()) expect(attemptsSeen.get(`${executionId}/${index}`)).toEqual([1]);
  });

  it("retries an item on its own: only the flaky item runs twice", async () => {
    const { executionId } = await mesh.api.start("map-squares", { input: { numbers: [2, 7, 8], flakyOn: 7 } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect((done.output as Array<{ square: number }>).map((o) => o.square)).toEqual([4, 49, 64]);
    expect(attemptsSeen.get(`${executionId}/1`)).toEqual([1, 2]);
    expect(attemptsSeen.get(`${executionId}/0`)).toEqual([1]);
    expect(attemptsSeen.get(`${executionId}/2`)).toEqual([1]);
  });

  it("an empty list completes the step at once with []", async () => {
    const { executionId } = await mesh.api.start("map-squares", { input: { numbers: [] } });
    const done = await mesh.waitForStatus(executionId, "completed", 15_000);
    expect(done.output).toEqual([]);
    expect(done.steps.find((s) => s.stepId === "after")!.output).toEqual({ count: 0 });
  });

  it("an item failing past its retries fails the step with MAP_ITEMS_FAILED naming the item", async () => {
    const { executionId } = await mesh.api.start("map-squares", { input: { numbers: [1, 2, 3, 4, 5, 6], failOn: 3 } });
    const failed = await mesh.waitForStatus(executionId, "failed", 30_000);
    expect(failed.error?.code).toBe("MAP_ITEMS_FAILED");
    expect(failed.error?.message).toContain("item 2 of step sq failed: BAD_ITEM");
    // Items after the failure were never dispatched, or were cancelled with the step.
    const { rows } = await pool.query<{ status: string; n: number }>(
      "SELECT status, count(*)::int AS n FROM map_items WHERE execution_id = $1 GROUP BY status",
      [executionId],
    );
    const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    expect(byStatus.dispatched ?? 0).toBe(0);
    expect(byStatus.pending ?? 0).toBe(0);
    expect(byStatus.failed).toBe(1);
  });

  it("map.tolerateFailures lets that many items fail; their slots are null", async () => {
    const { executionId } = await mesh.api.start("map-tolerant", { input: { numbers: [1, 2, 3], failOn: 2 } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect(done.output).toEqual([{ n: 1, square: 1, index: 0 }, null, { n: 3, square: 9, index: 2 }]);
    expect(done.steps[0]!.map).toMatchObject({ total: 3, done: 3, failed: 1 });
    const twoBad = await mesh.api.start("map-tolerant", { input: { numbers: [2, 2, 3], failOn: 2 } });
    expect((await mesh.waitForStatus(twoBad.executionId, "failed", 30_000)).error?.code).toBe("MAP_ITEMS_FAILED");
  });

  it("a list that is not an array, or longer than maxItems, fails the step with MAP_ITEMS_INVALID", async () => {
    const notList = await mesh.api.start("map-capped", { input: { numbers: { a: 1 } } });
    const failed = await mesh.waitForStatus(notList.executionId, "failed", 15_000);
    expect(failed.error).toMatchObject({ code: "MAP_ITEMS_INVALID" });
    expect(failed.error?.message).toContain("not an array");
    const tooLong = await mesh.api.start("map-capped", { input: { numbers: [1, 2, 3, 4] } });
    const capped = await mesh.waitForStatus(tooLong.executionId, "failed", 15_000);
    expect(capped.error?.message).toContain("4 items; the step's map.maxItems is 3");
  });

  it("publishes the step's progress as items done / total", async () => {
    const seen: Progress[] = [];
    const { executionId } = await mesh.api.start("map-tolerant", { input: { numbers: [5, 6, 7, 8] } });
    const sub = mesh.nc.subscribe(mesh.names.subjects.progress(executionId, "sq"));
    const reading = (async () => {
      for await (const m of sub) {
        const p = decode(m.data, Progress);
        if (!p.taskId) seen.push(p);
        if (p.percent === 100 && !p.taskId) break;
      }
    })();
    await mesh.waitForStatus(executionId, "completed", 30_000);
    await waitFor(async () => seen.some((p) => p.percent === 100) || undefined, { timeoutMs: 10_000, message: "100 % progress" }).catch(() => undefined);
    sub.unsubscribe();
    await reading;
    // Subscribed after the start: the first item may have ended before; the last one is always seen.
    expect(seen.at(-1)).toMatchObject({ percent: 100, message: "4/4 items done" });
  });

  it("each item keeps its own checkpoint", async () => {
    const { executionId } = await mesh.api.start("map-checkpoints", { input: { values: ["a", "b", "c"] } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect(done.output).toEqual(["a", "b", "c"].map((v) => ({ before: null, after: { value: v } })));
  });

  it("maps over a sub-flow: each item a child execution that knows its parent; cancelling the parent cancels them", async () => {
    const { executionId } = await mesh.api.start("map-children", { input: { names: ["ada", "grace", "linus"] } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect(done.output).toEqual([{ said: "hi ada" }, { said: "hi grace" }, { said: "hi linus" }]);
    const { rows } = await pool.query<{ id: string; parent_task_id: string; status: string }>(
      "SELECT id, parent_task_id, status FROM executions WHERE parent_execution_id = $1 ORDER BY parent_task_id",
      [executionId],
    );
    expect(rows.map((r) => [r.parent_task_id, r.status])).toEqual([0, 1, 2].map((i) => [`${executionId}/each#1.${i}`, "completed"]));
    const child = await mesh.api.get(rows[0]!.id);
    expect(child).toMatchObject({ parentExecutionId: executionId, parentStepId: "each", input: { name: "ada" } });

    const slow = await mesh.api.start("map-naps", { input: {} });
    const children = await waitFor(async () => {
      const { rows: running } = await pool.query<{ id: string }>("SELECT id FROM executions WHERE parent_execution_id = $1 AND status = 'running'", [slow.executionId]);
      return running.length === 2 ? running.map((r) => r.id) : undefined;
    }, { timeoutMs: 15_000, message: "two item children running" });
    await mesh.api.cancel(slow.executionId);
    for (const id of children) expect((await mesh.waitForStatus(id, "cancelled", 15_000)).status).toBe("cancelled");
  });

  it("2,000 items: the execution row stays small while they run (items are rows of their own)", async () => {
    const { executionId } = await mesh.api.start("map-many", { input: { n: 2000 } });
    const sizes: number[] = [];
    const done = await waitFor(
      async () => {
        const { rows } = await pool.query<{ bytes: number; status: string }>("SELECT pg_column_size(steps) + pg_column_size(context) AS bytes, status FROM executions WHERE id = $1", [executionId]);
        if (rows[0]?.status === "running") sizes.push(rows[0].bytes);
        return rows[0]?.status === "completed" || undefined;
      },
      { timeoutMs: 120_000, intervalMs: 50, message: "2,000 items done" },
    );
    expect(done).toBe(true);
    expect((await mesh.api.get(executionId)).output).toBe(2000);
    expect(sizes.length).toBeGreaterThan(0);
    // Counters, not the list: a row holding 2,000 items would be tens of KB.
    expect(Math.max(...sizes)).toBeLessThan(2048);
    const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM map_items WHERE execution_id = $1 AND status = 'completed'", [executionId]);
    expect(rows[0]!.n).toBe(2000);
  });

  it("an operator's retry of a failed map step maps again as a new run", async () => {
    const { executionId } = await mesh.api.start("map-squares", { input: { numbers: [1, 2], failOn: 2 } });
    await mesh.waitForStatus(executionId, "failed", 30_000);
    const retried = await mesh.api.retryStep(executionId, "sq");
    expect(retried.attempt).toBe(2);
    // The same input fails the same item again, in run 2: the old run's items are untouched.
    await waitFor(async () => ((await mesh.api.get(executionId)).steps[0]!.attempts === 2 && (await mesh.api.get(executionId)).status === "failed") || undefined, {
      timeoutMs: 30_000,
      message: "run 2 to fail",
    });
    const { rows } = await pool.query<{ run: number; n: number }>("SELECT run, count(*)::int AS n FROM map_items WHERE execution_id = $1 GROUP BY run ORDER BY run", [executionId]);
    expect(rows).toEqual([{ run: 1, n: 2 }, { run: 2, n: 2 }]);
  });
});
