import { silentLogger, type TaskInput } from "@flowmonkey/shared";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createWorker, defineHandler, type HandlerDefinition, type Worker } from "../../src/index.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { waitFor } from "../../../test/support/wait.js";
import { gate, makeTask, type Mesh, openMesh, poolInfo, publishTask, REGION, waitForResults } from "../helpers.js";

const nats = useNatsServer();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<Mesh> {
  const mesh = await openMesh(nats.url);
  cleanups.push(() => mesh.close());
  return mesh;
}

async function startWorker(mesh: Mesh, handler: HandlerDefinition<any, unknown>, concurrency: number): Promise<Worker> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const worker = createWorker({ nc: mesh.nc, log: silentLogger(), prefix: mesh.names.prefix, region: REGION, handlers: [handler], concurrency });
  cleanups.push(() => worker.close());
  await worker.start();
  return worker;
}

async function publishAll(mesh: Mesh, tasks: TaskInput[]): Promise<void> {
  await Promise.all(tasks.map((t) => publishTask(mesh, t)));
}

describe("drain", () => {
  it("stops pulling and lets in-flight tasks finish within the grace period", async () => {
    const mesh = await setup();
    const release = gate();
    const started: string[] = [];
    const held = defineHandler({
      type: "held",
      async execute(ctx) {
        started.push(ctx.task.taskId);
        await release.promise;
        return "done";
      },
    });
    const worker = await startWorker(mesh, held, 3);
    const tasks = Array.from({ length: 5 }, () => makeTask({ type: "held" }));
    await publishAll(mesh, tasks);
    await waitFor(() => started.length === 3, { message: "three tasks running" });

    const graceMs = 10_000;
    const drainStarted = Date.now();
    const drained = worker.drain(drainStarted + graceMs);
    // Draining has stopped the fetches: no slot is promised to the server any more.
    await waitFor(() => worker.stats().requested === 0, { message: "no open fetch" });
    release.open();
    await drained;

    expect(Date.now() - drainStarted).toBeLessThan(graceMs);
    const results = await waitForResults(mesh, 3);
    expect(results.map((r) => r.outcome)).toEqual(["success", "success", "success"]);
    expect(new Set(results.map((r) => r.taskId))).toEqual(new Set(started));
    // The two tasks never started stay queued for another worker.
    const info = await poolInfo(mesh, "held");
    expect({ pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ pending: 2, ackPending: 0 });
    await worker.close();
    expect(started).toHaveLength(3);
    expect(await worker.closed()).toBeUndefined();
  });

  it("aborts tasks still running at the deadline and another worker completes them", async () => {
    const mesh = await setup();
    const abortReasons: unknown[] = [];
    let startedA = 0;
    const stubborn = defineHandler({
      type: "job",
      async execute(ctx) {
        startedA++;
        try {
          await sleep(60_000, undefined, { signal: ctx.signal });
        } catch (err) {
          abortReasons.push(ctx.signal.reason);
          throw err;
        }
        return "A finished";
      },
    });
    const a = await startWorker(mesh, stubborn, 2);
    const tasks = [makeTask({ type: "job" }), makeTask({ type: "job" })];
    await publishAll(mesh, tasks);
    await waitFor(() => startedA === 2, { message: "both tasks running on worker A" });

    const drainStarted = Date.now();
    await a.drain(drainStarted + 300);
    expect(Date.now() - drainStarted).toBeLessThan(5000);
    // The handlers see their signal fire; they react on their own schedule.
    await waitFor(() => abortReasons.length === 2, { message: "both handlers aborted" });
    expect(abortReasons).toEqual([expect.objectContaining({ code: "WORKER_SHUTDOWN" }), expect.objectContaining({ code: "WORKER_SHUTDOWN" })]);
    await a.close();
    expect((await mesh.jsm.streams.info(mesh.names.streams.results)).state.messages).toBe(0);

    const deliveries = new Map<string, number>();
    const quick = defineHandler({
      type: "job",
      execute(ctx) {
        deliveries.set(ctx.task.taskId, ctx.task.deliveryCount);
        return "B finished";
      },
    });
    await startWorker(mesh, quick, 2);
    const results = await waitForResults(mesh, 2);
    expect(results.map((r) => (r.outcome === "success" ? r.output : r.outcome))).toEqual(["B finished", "B finished"]);
    expect(new Set(results.map((r) => r.taskId))).toEqual(new Set(tasks.map((t) => t.taskId)));
    // Redelivered (second delivery), and promptly: the nak did not wait for ack_wait (60 s here).
    expect([...deliveries.values()]).toEqual([2, 2]);
    expect(startedA).toBe(2);
  });
});
