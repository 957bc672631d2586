/**
 * A task delivered again to the worker that is still running it is not run twice there.
 *
 * The trigger is real: a handler that hogs the event loop (a synchronous loop longer than the
 * pool's ack_wait) stops the worker's in-progress acks, so nats-server hands the task out again
 * — to this same worker, the only one, when it next pulls the lane (here: for a second task of
 * the lane, dispatched while the first still runs; the server hands out the redelivery first).
 * The worker holds that copy (heartbeated, acked with the original) instead of starting a second
 * concurrent run. Real nats-server and PostgreSQL; engine and worker in this process.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { defineHandler } from "@flowmonkey/worker";
import { describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const ACK_WAIT_MS = 1000;
const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, heartbeatTimeoutMs: ACK_WAIT_MS, workers: [] }));

const runs = new Map<string, number>();
let hogged = false;
const hog = defineHandler({
  type: "hog",
  version: "1",
  async execute(ctx) {
    runs.set(ctx.task.taskId, (runs.get(ctx.task.taskId) ?? 0) + 1);
    // Only the first run hogs; the second execution's step just answers.
    if (hogged) return { runs: runs.get(ctx.task.taskId) };
    hogged = true;
    // Hogs the event loop for 2.5 ack_waits: no in-progress ack can leave this process meanwhile.
    const until = Date.now() + 2.5 * ACK_WAIT_MS;
    while (Date.now() < until) {
      // spin
    }
    // Still running while the copy arrives: a second task of the lane makes the worker pull it,
    // and the server delivers the redelivery first.
    await mesh.api.start("hogging", { input: {}, executionId: "second" });
    await new Promise((r) => setTimeout(r, 2 * ACK_WAIT_MS));
    return { runs: runs.get(ctx.task.taskId) };
  },
});

describe("a task delivered again while it runs on the same worker", () => {
  it("runs once: the copy is held and acked with the original", { timeout: 60_000 }, async () => {
    await mesh.startWorker({ handlers: [hog], concurrency: 4 });
    await mesh.putFlow({ id: "hogging", steps: [{ id: "hog", handler: "hog" }] });
    const { executionId } = await mesh.api.start("hogging", { input: {} });
    const view = await mesh.waitForStatus(executionId, "completed", 30_000);
    await mesh.waitForStatus("second", "completed", 30_000);

    // The server really did deliver it again (else this test proves nothing)…
    const jsm = await jetstreamManager(mesh.nc);
    const pool = await jsm.consumers.info(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", "hog", "normal"));
    expect(pool.delivered.consumer_seq).toBeGreaterThanOrEqual(3);
    // …and the handler ran once, for one attempt, and nothing is left pending.
    expect(runs.get(`${executionId}/hog`)).toBe(1);
    expect(view.steps.find((s) => s.stepId === "hog")).toMatchObject({ status: "completed", attempts: 1, output: { runs: 1 } });
    await waitFor(async () => (await jsm.consumers.info(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", "hog", "normal"))).num_ack_pending === 0, {
      timeoutMs: 5000,
      message: "the original and the copy both acked",
    });
  });
});
