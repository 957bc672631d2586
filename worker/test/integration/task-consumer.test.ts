import { decode, Progress, silentLogger, STEP_KEYS, WORKER_KEYS } from "@flowmonkey/shared";
import { Kvm } from "@nats-io/kv";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createWorker, defineHandler, type Worker } from "../../src/index.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { nextMessage, waitFor } from "../../../test/support/wait.js";
import { makeTask, type Mesh, openMesh, poolInfo, publishTask, REGION, storedResults, waitForResults } from "../helpers.js";

const nats = useNatsServer();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(heartbeatTimeoutMs = 60_000): Promise<Mesh> {
  const mesh = await openMesh(nats.url, heartbeatTimeoutMs);
  cleanups.push(() => mesh.close());
  return mesh;
}

async function startWorker(mesh: Mesh, options: Partial<Parameters<typeof createWorker>[0]>): Promise<Worker> {
  const worker = createWorker({ nc: mesh.nc, log: silentLogger(), prefix: mesh.names.prefix, region: REGION, ...options });
  cleanups.push(() => worker.close());
  await worker.start();
  return worker;
}

describe("task consumer", () => {
  it("runs 50 tasks with concurrency 4: each result once, never more than 4 running or unacknowledged", async () => {
    const mesh = await setup();
    let current = 0;
    let maxConcurrent = 0;
    const executions = new Map<string, number>();
    const probe = defineHandler({
      type: "probe",
      async execute(ctx) {
        executions.set(ctx.task.taskId, (executions.get(ctx.task.taskId) ?? 0) + 1);
        maxConcurrent = Math.max(maxConcurrent, ++current);
        // Long enough that tasks overlap and the consumer polls below see them in flight.
        await sleep(30);
        current--;
        return { n: ctx.input };
      },
    });
    const worker = await startWorker(mesh, { handlers: [probe], concurrency: 4 });
    const tasks = Array.from({ length: 50 }, (_, i) => makeTask({ type: "probe", input: i }));
    await Promise.all(tasks.map((t) => publishTask(mesh, t)));

    let maxAckPending = 0;
    let maxSlotsUsed = 0;
    let polls = 0;
    const results = await waitFor(
      async () => {
        const info = await poolInfo(mesh, "probe");
        const stats = worker.stats();
        polls++;
        maxAckPending = Math.max(maxAckPending, info.num_ack_pending);
        maxSlotsUsed = Math.max(maxSlotsUsed, stats.running + stats.requested);
        const stream = await mesh.jsm.streams.info(mesh.names.streams.results);
        return stream.state.messages >= 50 && storedResults(mesh);
      },
      { timeoutMs: 30_000, intervalMs: 5, message: "50 results" },
    );
    await worker.close();

    expect(results).toHaveLength(50);
    expect(new Set(results.map((r) => r.taskId))).toEqual(new Set(tasks.map((t) => t.taskId)));
    expect(results.every((r) => r.outcome === "success")).toBe(true);
    expect([...executions.values()].every((n) => n === 1)).toBe(true);
    expect(executions.size).toBe(50);
    expect(maxConcurrent).toBeLessThanOrEqual(4);
    expect(maxConcurrent).toBeGreaterThan(1); // it did run tasks side by side
    expect(polls).toBeGreaterThan(5);
    expect(maxAckPending).toBeGreaterThan(0);
    expect(maxAckPending).toBeLessThanOrEqual(4);
    expect(maxSlotsUsed).toBeLessThanOrEqual(4);
    expect(worker.stats()).toMatchObject({ completed: 50, failed: 0, running: 0 });
    // Nothing left behind: every task acknowledged, nothing published twice.
    const info = await poolInfo(mesh, "probe");
    expect({ pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered }).toEqual({ pending: 0, ackPending: 0, redelivered: 0 });
    expect((await mesh.jsm.streams.info(mesh.names.streams.results)).state.messages).toBe(50);
  });

  it("at full speed (echo), the server never sees more unacknowledged tasks than the concurrency", async () => {
    const mesh = await setup();
    const worker = await startWorker(mesh, { handlers: ["echo"], concurrency: 4 });
    const tasks = Array.from({ length: 1000 }, (_, i) => makeTask({ input: i }));
    for (let i = 0; i < tasks.length; i += 250) await Promise.all(tasks.slice(i, i + 250).map((t) => publishTask(mesh, t)));
    let maxAckPending = 0;
    let polls = 0;
    // As many consumer snapshots as the server answers while the tasks run.
    const deadline = Date.now() + 30_000;
    while (worker.stats().completed < tasks.length && Date.now() < deadline) {
      maxAckPending = Math.max(maxAckPending, (await poolInfo(mesh, "echo")).num_ack_pending);
      polls++;
    }
    expect(worker.stats().completed).toBe(tasks.length);
    expect(polls).toBeGreaterThan(20);
    expect(maxAckPending).toBe(4);
    expect((await mesh.jsm.streams.info(mesh.names.streams.results)).state.messages).toBe(1000);
  });

  it("keeps a slow task from redelivery with working() derived from ack_wait", async () => {
    const mesh = await setup(1500);
    let executions = 0;
    const slow = defineHandler({
      type: "slow",
      async execute(ctx) {
        executions++;
        // Three times the consumer's ack_wait: without heartbeats it would be redelivered twice.
        await sleep(4500, undefined, { signal: ctx.signal });
        return { deliveryCount: ctx.task.deliveryCount };
      },
    });
    await startWorker(mesh, { handlers: [slow], concurrency: 2, heartbeatTimeoutMs: 1500 });
    expect((await poolInfo(mesh, "slow")).config.ack_wait).toBe(1500 * 1_000_000);
    const task = makeTask({ type: "slow" });
    await publishTask(mesh, task);

    const [result] = await waitForResults(mesh, 1, 15_000);
    expect(result).toMatchObject({ taskId: task.taskId, outcome: "success", output: { deliveryCount: 1 } });
    expect(executions).toBe(1);
    const info = await poolInfo(mesh, "slow");
    expect(info.num_redelivered).toBe(0);
    expect(info.delivered.consumer_seq).toBe(1);
  });

  it("terminates poison tasks, answering with an error result when their ids are readable", async () => {
    const mesh = await setup();
    const terminated: string[] = [];
    const advisories = mesh.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${mesh.names.streams.tasks}.>`, {
      callback: (_err, msg) => {
        terminated.push(msg.string());
      },
    });
    cleanups.push(async () => advisories.unsubscribe());
    await startWorker(mesh, { handlers: ["echo"], concurrency: 2 });
    const subject = mesh.names.subjects.task(REGION, "echo", "normal");

    const wrongShape = makeTask({ type: "echo" });
    const { config: _missing, ...withoutConfig } = wrongShape;
    const unknownHandler = makeTask({ type: "no-such-handler" });
    await mesh.js.publish(subject, new TextEncoder().encode("this is not JSON"));
    await mesh.js.publish(subject, new TextEncoder().encode(JSON.stringify(withoutConfig)));
    await publishTask(mesh, unknownHandler, "echo");

    const results = await waitForResults(mesh, 2);
    const byTask = new Map(results.map((r) => [r.taskId, r]));
    expect(byTask.get(wrongShape.taskId)).toMatchObject({ outcome: "error", failure: { code: "INVALID_INPUT", retryable: false }, attempt: 1 });
    expect(byTask.get(unknownHandler.taskId)).toMatchObject({ outcome: "error", failure: { code: "HANDLER_NOT_FOUND", retryable: false } });
    await waitFor(() => terminated.length >= 3, { message: "three MSG_TERMINATED advisories" });
    const info = await poolInfo(mesh, "echo");
    expect({ pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered }).toEqual({ pending: 0, ackPending: 0, redelivered: 0 });
    expect(results).toHaveLength(2);
  });
});

describe("worker plumbing", () => {
  it("is listed in the workers bucket while it runs, and removed on close", async () => {
    const mesh = await setup();
    const worker = await startWorker(mesh, { handlers: ["echo", "delay"], concurrency: 3, workerId: "w-presence" });
    const kv = await new Kvm(mesh.nc).open(mesh.names.buckets.workers);
    const entry = await kv.get(WORKER_KEYS.key(REGION, "w-presence"));
    expect(entry?.json()).toMatchObject({ workerId: "w-presence", region: REGION, handlers: ["echo", "delay"], concurrency: 3, inFlight: 0 });
    await worker.close();
    expect((await kv.get(WORKER_KEYS.key(REGION, "w-presence")))?.operation).toBe("DEL");
  });

  it("publishes progress live and keeps the latest in the progress bucket", async () => {
    const mesh = await setup();
    const task = makeTask({ type: "delay", input: { ms: 400 } });
    const live = mesh.nc.subscribe(mesh.names.subjects.regionProgress(REGION, task.executionId, task.stepId));
    cleanups.push(async () => live.unsubscribe());
    await startWorker(mesh, { handlers: ["delay"], concurrency: 1 });
    await publishTask(mesh, task);
    const first = await nextMessage(live, { timeoutMs: 10_000 });
    expect(decode(first.data, Progress)).toMatchObject({ executionId: task.executionId, taskId: task.taskId, attempt: 1 });
    await waitForResults(mesh, 1);
    const kv = await new Kvm(mesh.nc).open(mesh.names.buckets.progress);
    const latest = await waitFor(async () => (await kv.get(STEP_KEYS.key(task.metadata.region, task.executionId, task.stepId))) ?? undefined, { message: "progress in KV" });
    expect(decode(latest.value, Progress).percent).toBe(100);
  });

  it("sends the estimated completion a handler sets, with its progress", async () => {
    const mesh = await setup();
    const eta = new Date(Date.now() + 60_000);
    const eager = defineHandler({
      type: "eager",
      version: "1",
      async execute(ctx) {
        await ctx.progress.update(40, "warming up");
        await ctx.progress.setEstimatedCompletion(eta);
        return { ok: true };
      },
    });
    const task = makeTask({ type: "eager", input: {} });
    const live = mesh.nc.subscribe(mesh.names.subjects.regionProgress(REGION, task.executionId, task.stepId));
    cleanups.push(async () => live.unsubscribe());
    await startWorker(mesh, { handlers: [eager], concurrency: 1 });
    await publishTask(mesh, task);
    const seen = await waitFor(
      async () => {
        const m = decode((await nextMessage(live, { timeoutMs: 10_000 })).data, Progress);
        return m.estimatedCompletion ? m : undefined;
      },
      { message: "a progress update with the estimated completion" },
    );
    expect(seen).toMatchObject({ percent: 40, estimatedCompletion: eta.toISOString() });
  });
});
