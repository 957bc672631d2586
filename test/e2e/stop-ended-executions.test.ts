/**
 * A step whose execution ends while it runs (cancelled, or failed by a parallel step) is stopped
 * on its worker: the handler's signal fires, the slot is free at once and the task is settled
 * (acked, not redelivered), instead of the handler running on to a result nobody wants.
 * Real mesh: nats-server, PostgreSQL, engine, worker.
 */
import { defineHandler, type Worker } from "@flowmonkey/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let worker: Worker;
/** Why each run of `linger` stopped, by execution id: its signal's reason, or "finished". */
const stops = new Map<string, string>();
let runs = 0;

// Runs until its signal fires (or a minute passes), and says which.
const linger = defineHandler({
  type: "linger",
  async execute(ctx) {
    runs++;
    const why = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve("finished"), 60_000);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve(String((ctx.signal.reason as Error | undefined)?.message ?? ctx.signal.reason));
      });
    });
    stops.set(ctx.task.executionId, why);
    return { why };
  },
});

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["fail"] }] });
  worker = await mesh.startWorker({ handlers: [linger], concurrency: 2 });
  await mesh.putFlow({ id: "long", steps: [{ id: "hold", handler: "linger", input: {} }] });
  await mesh.putFlow({ id: "parent", steps: [{ id: "child", flow: "long" }] });
  await mesh.putFlow({
    id: "doomed-pair",
    steps: [
      { id: "hold", handler: "linger", input: {} },
      { id: "boom", handler: "fail", input: { code: "BOOM" }, dependsOn: [] },
    ],
  });
});
afterAll(async () => {
  await mesh?.close();
});

const runningHere = () => worker.stats().running;

describe("a step of an execution that ended", () => {
  it("is stopped on its worker when the execution is cancelled: signal fired, slot freed, not run again", async () => {
    const before = runs;
    const { executionId } = await mesh.api.start("long", { input: {} });
    await waitFor(async () => ((await mesh.api.get(executionId)).steps[0]!.status === "running" ? true : undefined), { message: "the step to run" });
    expect(runningHere()).toBe(1);

    await mesh.api.cancel(executionId);
    await waitFor(() => (stops.has(executionId) ? true : undefined), { timeoutMs: 10_000, message: "the handler's signal to fire" });
    expect(stops.get(executionId)).toMatch(/was cancelled/);
    await waitFor(() => (runningHere() === 0 ? true : undefined), { timeoutMs: 10_000, message: "the slot to be free" });
    // Settled, not handed back: nothing is pending or unacknowledged in the pool's queues.
    await waitFor(async () => {
      const { queues } = await mesh.api.queues({});
      const lingering = queues.filter((q) => q.handler === "linger");
      return lingering.every((q) => q.pending === 0 && q.ackPending === 0) ? true : undefined;
    }, { timeoutMs: 10_000, message: "the task message to be acked" });
    expect(runs - before).toBe(1);
    expect((await mesh.api.get(executionId)).status).toBe("cancelled");
  });

  it("is stopped in a sub-flow when its parent is cancelled (the cancel cascades to the child)", async () => {
    const { executionId } = await mesh.api.start("parent", { input: {} });
    const childId = await waitFor(async () => (await mesh.api.get(executionId)).steps[0]!.childExecutionId, { message: "the child execution" });
    await waitFor(async () => ((await mesh.api.get(childId)).steps[0]!.status === "running" ? true : undefined), { message: "the child's step to run" });
    await mesh.api.cancel(executionId);
    await waitFor(() => (stops.has(childId) ? true : undefined), { timeoutMs: 10_000, message: "the child's handler to be stopped" });
    expect(stops.get(childId)).toMatch(/was cancelled/);
    await waitFor(() => (runningHere() === 0 ? true : undefined), { timeoutMs: 10_000, message: "the slot to be free" });
    expect((await mesh.api.get(childId)).status).toBe("cancelled");
  });

  it("is not stopped by news of an end from before it was dispatched (a step retried after a failure)", async () => {
    const { executionId } = await mesh.api.start("long", { input: {} });
    await waitFor(async () => ((await mesh.api.get(executionId)).steps[0]!.status === "running" ? true : undefined), { message: "the step to run" });
    // A `failed` event stamped a minute before this attempt was dispatched: late news of an
    // earlier end (as a worker sees it after executions.retryStep). It must not stop the attempt.
    const stale = { at: new Date(Date.now() - 60_000).toISOString() };
    mesh.nc.publish(mesh.names.subjects.exec("long", executionId, "failed"), JSON.stringify(stale));
    // Then the real cancel: the handler's stop reason says which of the two stopped it.
    await mesh.api.cancel(executionId);
    await waitFor(() => (stops.has(executionId) ? true : undefined), { timeoutMs: 10_000, message: "the handler's signal to fire" });
    expect(stops.get(executionId)).toMatch(/was cancelled/);
  });

  it("is stopped when a parallel step fails the execution", async () => {
    const { executionId } = await mesh.api.start("doomed-pair", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed", 15_000);
    expect(failed.error?.code).toBe("BOOM");
    await waitFor(() => (stops.has(executionId) ? true : undefined), { timeoutMs: 10_000, message: "the lingering step's signal to fire" });
    expect(stops.get(executionId)).toMatch(/was failed/);
    await waitFor(() => (runningHere() === 0 ? true : undefined), { timeoutMs: 10_000, message: "the slot to be free" });
    expect((await mesh.api.get(executionId)).status).toBe("failed");
  });
});
