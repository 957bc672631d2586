/**
 * Large contexts (ctx.context): over the engine's threshold (256 KiB by default) a context is
 * not inlined in the task; it goes gzip'd to the blob bucket as a manifest plus one blob per
 * large top-level key, and the task carries `{}` + a contextRef. A handler's get("k") fetches
 * only k's blob (counted through an instrumented blob store); a 10 MB context, built up over
 * steps that each add < 1 MiB (a result, like any message, must fit NATS max_payload), runs
 * with task messages of a few KiB.
 */
import { createHash } from "node:crypto";
import type { Subscription } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { BLOB_NAMES, createLogger, decode, encode, openBlobStoreLazily, Task, type BlobStore } from "@flowmonkey/shared";
import { startContextBlobCleanup } from "../../engine/src/context/blob-cleanup.js";
import { defineHandler, RetryableFailure } from "@flowmonkey/worker";
import { z } from "zod";
import { useMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [] }));
/** The region of the mesh's workers here: offloaded contexts go to its blob bucket (fm_blobs_<region>). */
const REGION = "us-east-1";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The real blob store, with every blob a worker reads recorded by name. */
function countingBlobs(inner: BlobStore): BlobStore & { reads: string[] } {
  const reads: string[] = [];
  return { ...inner, reads, get: (name, options) => (reads.push(name), inner.get(name, options)) };
}

const blobNameOf = (executionId: string, value: unknown) =>
  BLOB_NAMES.context(executionId, createHash("sha256").update(encode(value)).digest("hex"));

/** Every task the engine publishes on the mesh's task subjects, as sent (a core subscription sees JetStream publishes). */
function recordTasks(m: TestMesh): { tasks: Array<{ task: Task; bytes: number }>; sub: Subscription } {
  const tasks: Array<{ task: Task; bytes: number }> = [];
  const sub = m.nc.subscribe(m.names.subjects.tasksAll, {
    callback: (err, msg) => {
      if (!err) tasks.push({ task: decode(msg.data, Task, { maxBytes: 64 * MiB }), bytes: msg.data.byteLength });
    },
  });
  return { tasks, sub };
}

/** Status and context straight from the engine's database: the API's execution view carries the whole context, too big to reply with here. */
async function executionRow(m: TestMesh, executionId: string) {
  const { rows } = await m.engine.db.query<{ status: string; context: Record<string, unknown>; bytes: number; steps: Record<string, { status: string; output?: unknown; attempts: number }> }>(
    "SELECT status, context, octet_length(context::text)::int AS bytes, steps FROM executions WHERE id = $1",
    [executionId],
  );
  return rows[0];
}

async function waitForEnd(m: TestMesh, executionId: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const row = await executionRow(m, executionId);
      return row && ["completed", "failed", "cancelled"].includes(row.status) ? row : undefined;
    },
    { timeoutMs, message: `execution ${executionId} to end` },
  );
}

const peek = defineHandler({
  type: "peek",
  input: z.object({ path: z.string() }),
  async execute(ctx) {
    const value = await ctx.context.get(ctx.input.path);
    return typeof value === "string" ? { length: value.length } : { value };
  },
});

describe("context offload", () => {
  it("a small context travels inline; one over the threshold leaves as a reference and get(k) fetches only k", async () => {
    const blobs = countingBlobs(openBlobStoreLazily(mesh.nc, mesh.names.regionBuckets.blobs(REGION)));
    await mesh.startWorker({ handlers: [peek], blobs });
    const { tasks, sub } = recordTasks(mesh);
    try {
      await mesh.putFlow({ id: "peek", steps: [{ id: "p", handler: "peek", input: { path: "{% input.path %}" } }] });

      const small = await mesh.api.start("peek", { input: { path: "greeting" }, context: { greeting: "hi" } });
      expect((await waitForEnd(mesh, small.executionId)).steps.p?.output).toEqual({ length: 2 });
      const smallTask = tasks.find((t) => t.task.executionId === small.executionId)!;
      expect(smallTask.task.contextRef).toBeUndefined();
      expect(smallTask.task.context).toEqual({ greeting: "hi" });
      expect(blobs.reads).toEqual([]);

      const wanted = { data: "w".repeat(300 * KiB), n: 1 };
      const other = { data: "o".repeat(300 * KiB) };
      const large = await mesh.api.start("peek", { input: { path: "wanted.n" }, context: { wanted, other, flag: true } });
      expect((await waitForEnd(mesh, large.executionId)).steps.p?.output).toEqual({ value: 1 });
      const largeTask = tasks.find((t) => t.task.executionId === large.executionId)!;
      expect(largeTask.task.context).toEqual({});
      expect(largeTask.task.contextRef).toMatchObject({ bucket: mesh.names.regionBuckets.blobs(REGION), encoding: "gzip" });
      expect(largeTask.bytes).toBeLessThan(4 * KiB);
      // The manifest, then the one key read: never `other`.
      expect(blobs.reads).toEqual([largeTask.task.contextRef!.name, blobNameOf(large.executionId, wanted)]);
      expect(blobs.reads).not.toContain(blobNameOf(large.executionId, other));
    } finally {
      sub.unsubscribe();
    }
  });

  it("contextUpdates on an offloaded context apply with the successful result only, and the next step sees them", async () => {
    const bump = defineHandler({
      type: "bump",
      async execute(ctx) {
        const counter = (await ctx.context.get("counter")) as number;
        // Below a large key never read: recorded without loading it.
        ctx.context.set("big.n", counter + 1);
        ctx.context.set("counter", counter + 1);
        if (ctx.task.attempt === 1) {
          ctx.context.set("counter", 1000);
          throw new RetryableFailure("UNAVAILABLE", "the first attempt's writes must be dropped");
        }
        return { counter: await ctx.context.get("counter"), n: await ctx.context.get("big.n") };
      },
    });
    await mesh.startWorker({ handlers: [bump, peek] });
    await mesh.putFlow({
      id: "bump",
      steps: [
        { id: "b", handler: "bump", input: {}, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 10, jitter: false } },
        { id: "after", handler: "peek", input: { path: "big.n" } },
      ],
    });
    const big = { data: "b".repeat(400 * KiB), n: 0 };
    const { executionId } = await mesh.api.start("bump", { input: {}, context: { counter: 0, big } });
    const row = await waitForEnd(mesh, executionId);
    expect(row.status).toBe("completed");
    expect(row.steps.b).toMatchObject({ status: "completed", attempts: 2, output: { counter: 1, n: 1 } });
    expect(row.steps.after?.output).toEqual({ value: 1 });
    expect(row.context.counter).toBe(1);
    expect(row.context.big).toEqual({ ...big, n: 1 });
  });

  it("getSafe gives the fallback when a blob is gone; get fails the step", async () => {
    const blobs = openBlobStoreLazily(mesh.nc, mesh.names.regionBuckets.blobs(REGION));
    const gone = { data: "g".repeat(300 * KiB) };
    const readGone = defineHandler({
      type: "read-gone",
      async execute(ctx) {
        // The blob of `gone` is deleted under the running task: as if a sweep removed it early.
        await blobs.delete(blobNameOf(ctx.task.executionId, gone));
        const safe = await ctx.context.getSafe("gone.data", "fallback");
        const strict = await ctx.context.get("gone.data").then(() => "loaded", (err: Error) => err.message);
        return { safe, strict, small: await ctx.context.getSafe("small", "fallback") };
      },
    });
    await mesh.startWorker({ handlers: [readGone] });
    await mesh.putFlow({ id: "gone", steps: [{ id: "g", handler: "read-gone", input: {} }] });
    const { executionId } = await mesh.api.start("gone", { input: {}, context: { gone, small: 1 } });
    const row = await waitForEnd(mesh, executionId);
    expect(row.steps.g?.output).toMatchObject({ safe: "fallback", small: 1 });
    expect((row.steps.g?.output as { strict: string }).strict).toMatch(/missing from the blob bucket/);
  });

  it("a 10 MB context runs without a 10 MB task message", async () => {
    const PART = 900 * KiB;
    const PARTS = 12;
    const partValue = (i: number) => String.fromCharCode(97 + i).repeat(PART);
    const grow = defineHandler({
      type: "grow",
      input: z.object({ part: z.number().int() }),
      execute(ctx) {
        // Distinct content per part: content-addressed blobs would otherwise share one.
        ctx.context.set(`part${ctx.input.part}`, partValue(ctx.input.part));
        return { part: ctx.input.part };
      },
    });
    const summarize = defineHandler({
      type: "summarize",
      async execute(ctx) {
        const all = (await ctx.context.get()) as Record<string, string>;
        return { keys: Object.keys(all).length, bytes: Object.values(all).reduce((n, v) => n + v.length, 0) };
      },
    });
    const blobs = countingBlobs(openBlobStoreLazily(mesh.nc, mesh.names.regionBuckets.blobs(REGION)));
    await mesh.startWorker({ handlers: [grow, summarize], blobs });
    const { tasks, sub } = recordTasks(mesh);
    try {
      await mesh.putFlow({
        id: "ten-mb",
        steps: [
          ...Array.from({ length: PARTS }, (_, i) => ({ id: `grow${i}`, handler: "grow", input: { part: i } })),
          { id: "sum", handler: "summarize", input: {} },
        ],
      });
      const { executionId } = await mesh.api.start("ten-mb", { input: {} });
      const row = await waitForEnd(mesh, executionId, 60_000);
      expect(row.status).toBe("completed");
      expect(row.bytes).toBeGreaterThan(10 * MiB);
      expect(row.steps.sum?.output).toEqual({ keys: PARTS, bytes: PARTS * PART });
      // executions.get still answers: the context is left out of the reply, with its size.
      const view = await mesh.api.get(executionId);
      expect(view).toMatchObject({ status: "completed", context: {} });
      expect(view.contextOmitted?.bytes).toBeGreaterThan(10 * MiB);

      const mine = tasks.filter((t) => t.task.executionId === executionId);
      expect(mine).toHaveLength(PARTS + 1);
      const largest = Math.max(...mine.map((t) => t.bytes));
      console.log(`[context-offload] 10 MB context (${row.bytes} bytes of JSON): task messages ${mine.map((t) => t.bytes).join(", ")} bytes; largest ${largest}`);
      expect(largest).toBeLessThan(8 * KiB);
      // Inline while it was small, a reference from the first step that pushed it over 256 KiB.
      expect(mine[0]!.task.contextRef).toBeUndefined();
      expect(mine.slice(1).every((t) => t.task.contextRef !== undefined && Object.keys(t.task.context).length === 0)).toBe(true);
      // The last step read everything: the manifest and each part once.
      expect(blobs.reads.filter((n) => n !== mine.at(-1)!.task.contextRef!.name).sort()).toEqual(
        Array.from({ length: PARTS }, (_, i) => blobNameOf(executionId, partValue(i))).sort(),
      );
    } finally {
      sub.unsubscribe();
    }
  });
});

describe("context blob cleanup", () => {
  it("deletes an ended execution's context blobs once the grace has passed", async () => {
    await mesh.startWorker({ handlers: [peek] });
    await mesh.putFlow({ id: "peek-clean", steps: [{ id: "p", handler: "peek", input: { path: "big.n" } }] });
    const big = { data: "b".repeat(300 * KiB), n: 7 };
    const { executionId } = await mesh.api.start("peek-clean", { input: {}, context: { big } });
    await waitForEnd(mesh, executionId);
    const { rows } = await mesh.engine.db.query<{ name: string }>("SELECT name FROM context_blobs WHERE execution_id = $1", [executionId]);
    expect(rows.map((r) => r.name)).toContain(blobNameOf(executionId, big));
    const blobs = openBlobStoreLazily(mesh.nc, mesh.names.regionBuckets.blobs(REGION));
    for (const { name } of rows) expect(await blobs.has(name)).toBe(true);

    // The engine sweeps every minute for executions ended over an hour ago; here one sweep with no grace, by hand.
    const cleanup = startContextBlobCleanup({ db: mesh.engine.db, blobs: { named: () => blobs }, log: createLogger({ name: "t", level: "silent" }), graceMs: 0, intervalMs: 60_000 });
    try {
      expect(await cleanup.sweepOnce()).toBeGreaterThanOrEqual(rows.length);
    } finally {
      await cleanup.stop();
    }
    for (const { name } of rows) expect(await blobs.has(name)).toBe(false);
    const { rows: left } = await mesh.engine.db.query("SELECT 1 FROM context_blobs WHERE execution_id = $1", [executionId]);
    expect(left).toHaveLength(0);
  });
});
