/**
 * Checkpoints and events from handlers (ctx.checkpoint, ctx.events).
 *
 *  - A stateful handler working through 100 items, checkpointing every 10, is SIGKILLed at about
 *    60 %; the replacement worker process resumes from the last checkpoint, and no item done
 *    before it is done again (counted in a table the handler writes). Real processes: the built
 *    engine and test/chaos/support/effects-worker.ts (the built-ins plus `batch`).
 *  - In process: a checkpoint over 1 MiB goes gzip'd to the blob store and a retry loads it back;
 *    an event a handler emits is stored in FM_EVENTS with its execution and step.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createApiClient, createNames, decode, Event } from "@flowmonkey/shared";
import { defineHandler, RetryableFailure } from "@flowmonkey/worker";
import { z } from "zod";
import { connectReconnecting, openPool } from "../chaos/support/observe.js";
import { useMeshProcesses } from "../chaos/support/processes.js";
import { useMesh } from "../support/mesh.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const meshProcesses = useMeshProcesses();

describe("a stateful handler killed mid-way", () => {
  it("resumes from its last checkpoint on another worker; items before it are not done again", async () => {
    const prefix = uniquePrefix();
    const db = openPool(pg.url);
    const nc = await connectReconnecting(nats.url);
    try {
      await db.query("CREATE TABLE batch_items (execution_id text, item int, pid int)");
      const mesh = meshProcesses({ natsUrl: nats.url, databaseUrl: pg.url, prefix, heartbeatTimeoutMs: 1500, env: { CHAOS_EFFECTS_DATABASE_URL: pg.url } });
      const worker = { script: fileURLToPath(new URL("../chaos/support/effects-worker.ts", import.meta.url)), handlers: ["batch"] };
      await mesh.startEngine();
      const first = await mesh.startWorker(worker);
      const api = createApiClient(nc, { prefix });
      await api.putFlow({ id: "crunch", steps: [{ id: "work", handler: "batch", input: { items: 100, every: 10, itemMs: 40 } }] });
      const { executionId } = await api.start("crunch", { input: {} });
      const done = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM batch_items")).rows[0]!.n;
      await waitFor(async () => (await done()) >= 60, { timeoutMs: 20_000, intervalMs: 20, message: "60 items done" });
      await first.kill("SIGKILL");
      const doneAtKill = await done();
      const second = await mesh.startWorker(worker);

      await waitFor(async () => (await api.get(executionId)).status === "completed", { timeoutMs: 30_000, message: "the batch to complete" });
      const { rows } = await db.query<{ item: number; pid: number }>("SELECT item, pid FROM batch_items ORDER BY item, pid");
      const byFirst = rows.filter((r) => r.pid === first.child.pid).map((r) => r.item);
      const bySecond = rows.filter((r) => r.pid === second.child.pid).map((r) => r.item);
      const resumedFrom = Math.min(...bySecond);
      const view = await api.get(executionId);
      console.log(
        `[checkpoints] killed after ${doneAtKill} items; the replacement resumed at item ${resumedFrom}; ` +
          `items done twice: ${byFirst.filter((i) => i >= resumedFrom).length} (those after the last checkpoint)`,
      );
      expect(view.output).toEqual({ resumedFrom, items: 100 });
      expect(resumedFrom % 10).toBe(0);
      expect(resumedFrom).toBeGreaterThanOrEqual(50);
      expect(resumedFrom).toBeLessThanOrEqual(doneAtKill);
      // Every item exactly once before the checkpoint (by the first worker), and from it on by the second.
      expect(byFirst.filter((i) => i < resumedFrom)).toEqual(Array.from({ length: resumedFrom }, (_, i) => i));
      expect(bySecond).toEqual(Array.from({ length: 100 - resumedFrom }, (_, i) => resumedFrom + i));
      // Redone: only what came after the last checkpoint, at most one checkpoint interval.
      expect(byFirst.filter((i) => i >= resumedFrom).length).toBeLessThanOrEqual(10);
      expect(view.steps[0]!.attempts).toBe(1);
    } finally {
      await nc.close();
      await db.end();
    }
  });
});

describe("checkpoints and events in process", () => {
  const BIG = 2 * 1024 * 1024;
  const bulky = defineHandler({
    type: "bulky",
    version: "1",
    input: z.object({}).passthrough(),
    async execute(ctx) {
      const saved = (await ctx.checkpoint.load()) as { blob: string } | undefined;
      if (!saved) {
        // Over 1 MiB: not a KV value; gzip'd to the blob store with a reference in KV.
        await ctx.checkpoint.save({ blob: "x".repeat(BIG) });
        throw new RetryableFailure("UNAVAILABLE", "first attempt fails after saving");
      }
      await ctx.events.emit("bulky.resumed", { length: saved.blob.length, attempt: ctx.task.attempt });
      await ctx.checkpoint.clear();
      return { length: saved.blob.length, cleared: (await ctx.checkpoint.load()) === undefined };
    },
  });
  const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] }));

  it("a checkpoint over 1 MiB survives into the retry through the blob store; an emitted event is stored", async () => {
    await mesh.startWorker({ handlers: [bulky], concurrency: 2 });
    await mesh.putFlow({
      id: "bulk",
      steps: [{ id: "b", handler: "bulky", input: {}, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false } }],
    });
    const { executionId } = await mesh.api.start("bulk", { input: {} });
    const view = await mesh.waitForStatus(executionId, "completed");
    expect(view.output).toEqual({ length: BIG, cleared: true });
    expect(view.steps[0]!.attempts).toBe(2);

    const jsm = await jetstreamManager(mesh.nc);
    const names = createNames(mesh.prefix);
    const stored = await waitFor(async () => (await jsm.streams.getMessage(names.streams.events, { last_by_subj: names.subjects.regionEvent("us-east-1", "bulky.resumed") })) ?? undefined, {
      message: "the event in FM_EVENTS",
    });
    expect(decode(stored.data, Event)).toMatchObject({ executionId, stepId: "b", data: { length: BIG, attempt: 2 } });
  });
});
