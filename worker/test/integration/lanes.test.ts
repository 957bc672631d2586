/**
 * A worker with fewer slots than lanes (issue 16): concurrency 1 serving 10 handlers × 3
 * priority lanes (30 pool consumers) on a real nats-server. Every lane is served when the lanes
 * above it are empty, and when several lanes have work the slot goes high, then normal, then low.
 */
import { encode, type Priority, silentLogger } from "@flowmonkey/shared";
import { afterEach, describe, expect, it } from "vitest";
import { createWorker, defineHandler, type Worker } from "../../src/index.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { waitFor } from "../../../test/support/wait.js";
import { gate, makeTask, type Mesh, openMesh, poolInfo, REGION } from "../helpers.js";

const nats = useNatsServer();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const HANDLERS = Array.from({ length: 10 }, (_, i) => `h${i}`);
const LANES: Priority[] = ["high", "normal", "low"];

/** One slot, 30 lanes; `onStart` sees each task's id as its handler starts. */
async function wideWorker(onStart: (taskId: string, handler: string) => Promise<void> | void, heartbeatTimeoutMs?: number, fetchExpiresMs?: number): Promise<{ mesh: Mesh; worker: Worker }> {
  const mesh = await openMesh(nats.url, heartbeatTimeoutMs);
  cleanups.push(() => mesh.close());
  const handlers = HANDLERS.map((type) =>
    defineHandler({
      type,
      async execute(ctx) {
        await onStart(ctx.task.taskId, type);
        return {};
      },
    }),
  );
  const worker = createWorker({ nc: mesh.nc, log: silentLogger(), prefix: mesh.names.prefix, region: REGION, handlers, concurrency: 1, ...(heartbeatTimeoutMs ? { heartbeatTimeoutMs } : {}), ...(fetchExpiresMs ? { fetchExpiresMs } : {}) });
  cleanups.push(() => worker.close());
  await worker.start();
  return { mesh, worker };
}

async function publish(mesh: Mesh, handler: string, priority: Priority): Promise<string> {
  const task = makeTask({ type: handler, metadata: { region: REGION, priority, dispatchedAt: new Date().toISOString() } });
  await mesh.js.publish(mesh.names.subjects.task(REGION, handler, priority), encode(task));
  return task.taskId;
}

describe("a worker with fewer slots than lanes", () => {
  it("starts a task in every one of 30 lanes (low included) on its one slot, each long before a fetch could expire", async () => {
    const started = new Set<string>();
    const { mesh, worker } = await wideWorker((taskId) => void started.add(taskId));
    // The worker is idle: no lane holds its slot. One task at a time, in every pool and lane; the
    // low lane of the last pool last. Before issue 16 the low ones never started: the normal
    // lanes' idle pulls held the slot, one after the other.
    let done = 0;
    for (const priority of LANES) {
      for (const handler of HANDLERS) {
        const taskId = await publish(mesh, handler, priority);
        // Generous against a loaded machine, yet shorter than one fetch expiry (3 s): a task
        // that had to wait for another lane's pull to expire would miss it.
        await waitFor(() => started.has(taskId), { timeoutMs: 2500, intervalMs: 2, message: `the ${priority} task of ${handler} started` });
        done++;
        await waitFor(() => worker.stats().completed === done, { message: `${done} tasks completed` });
      }
    }
    expect(started.size).toBe(30);
    // Nothing left behind in any lane.
    for (const priority of LANES) {
      const info = await poolInfo(mesh, "h9", priority);
      expect({ pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ pending: 0, ackPending: 0 });
    }
  });

  it("a low task runs on an idle worker whose higher lanes are empty", async () => {
    const started: string[] = [];
    const { mesh } = await wideWorker((taskId) => void started.push(taskId));
    const taskId = await publish(mesh, "h3", "low");
    await waitFor(() => started.includes(taskId), { timeoutMs: 10_000, message: "the low task started" });
    expect(started).toEqual([taskId]);
  });

  it("when several lanes have work, the one slot goes high, then normal, then low", async () => {
    const order: string[] = [];
    const first = gate();
    let blocking = true;
    const { mesh } = await wideWorker(async (taskId) => {
      order.push(taskId);
      if (blocking) {
        blocking = false;
        await first.promise;
      }
    });
    // The slot is taken by a task that waits for the test…
    const busy = await publish(mesh, "h0", "normal");
    await waitFor(() => order.length === 1, { message: "the blocking task started" });
    // …while low, normal and high tasks queue up in other pools, lowest first.
    const low = await publish(mesh, "h7", "low");
    const normal = await publish(mesh, "h4", "normal");
    const high = await publish(mesh, "h9", "high");
    const queued = async () => Promise.all([poolInfo(mesh, "h7", "low"), poolInfo(mesh, "h4", "normal"), poolInfo(mesh, "h9", "high")]);
    // Each waits in its lane undelivered: the busy worker asked for none of them.
    await waitFor(async () => (await queued()).every((i) => i.num_pending === 1), { message: "the three tasks queued" });
    expect((await queued()).map((i) => i.num_ack_pending)).toEqual([0, 0, 0]);
    first.open();
    await waitFor(() => order.length === 4, { timeoutMs: 10_000, message: "all four tasks started" });
    expect(order).toEqual([busy, high, normal, low]);
  });

  it("runs a task handed back by a worker that stopped (nak) at once, in any lane", async () => {
    const started: string[] = [];
    const { mesh } = await wideWorker((taskId) => void started.push(taskId));
    // Another worker of the pool takes the low task of h5 (its pull waits at the server before the
    // task is published, so it gets it) and hands it back, as a draining worker does.
    const msg = await takeAsAnotherWorker(mesh, "h5", "low", 60_000);
    expect(msg.info.deliveryCount).toBe(1);
    msg.nak();
    await waitFor(() => started.includes(taskIdOf(msg)), { timeoutMs: 2500, message: "the handed-back task started" });
    expect(started).toEqual([taskIdOf(msg)]);
  });

  it("picks up the task of a worker that died (a redelivery after ack_wait), though nothing announces it", async () => {
    const started: string[] = [];
    // The worker's own fetch for the task (its doorbell rang too) expires before the redelivery is
    // due, so no pull of it waits at the server then: only its sweep can find the task.
    const { mesh } = await wideWorker((taskId) => void started.push(taskId), 1500, 1000);
    // The "dead worker" takes the task and never acks it: the server hands it out again after ack_wait.
    const msg = await takeAsAnotherWorker(mesh, "h2", "high", 1500);
    await waitFor(() => started.includes(taskIdOf(msg)), { timeoutMs: 15_000, message: "the orphaned task started on the worker" });
    expect(started).toEqual([taskIdOf(msg)]);
    const info = await poolInfo(mesh, "h2", "high");
    expect(info.delivered.consumer_seq).toBe(2);
  });
});

/** A task of the lane, taken by a pull of another worker that was waiting before it was published. */
async function takeAsAnotherWorker(mesh: Mesh, handler: string, priority: Priority, ackWaitMs: number) {
  const consumer = await mesh.js.consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool(REGION, handler, priority));
  const next = consumer.next({ expires: 10_000 });
  await waitFor(async () => (await poolInfo(mesh, handler, priority)).num_waiting >= 1, { message: "the other worker's pull waiting" });
  await publish(mesh, handler, priority);
  const msg = await next;
  if (!msg) throw new Error("the other worker's pull got no task");
  expect((await poolInfo(mesh, handler, priority)).config.ack_wait).toBe(ackWaitMs * 1_000_000);
  return msg;
}

const taskIdOf = (msg: { json<T>(): T }) => msg.json<{ taskId: string }>().taskId;
