/**
 * A task whose workers keep dying is not lost: the pool consumer gives up after `max_deliver`
 * (5) deliveries of the same attempt, the server's MAX_DELIVERIES advisory (kept in a stream)
 * reaches the engine, which fails the step with DELIVERIES_EXHAUSTED, dead-letters the task on
 * `fm.dlq.<region>.<handler>` and removes the parked copy from the work queue. Replaying the
 * dead letter once a healthy worker runs completes the execution.
 *
 * Real processes: the built engine and worker binaries, each worker SIGKILLed while it runs
 * the task.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient, createNames } from "@flowmonkey/shared";
import { connectReconnecting, ProgressRecorder } from "../chaos/support/observe.js";
import { useMeshProcesses, type MeshProcesses } from "../chaos/support/processes.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const HEARTBEAT_TIMEOUT_MS = 1000;
const MAX_DELIVER = 5;
const nats = useNatsServer();
const database = useTestDatabase();
const meshProcesses = useMeshProcesses();
const prefix = uniquePrefix();
const names = createNames(prefix);
let mesh: MeshProcesses;
let nc: Awaited<ReturnType<typeof connectReconnecting>>;
let progress: ProgressRecorder;

beforeAll(async () => {
  mesh = meshProcesses({ natsUrl: nats.url, databaseUrl: database.url, prefix, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });
  nc = await connectReconnecting(nats.url);
  progress = new ProgressRecorder(nc, names);
  await mesh.startEngine();
});

afterAll(async () => {
  await progress?.stop();
  await nc?.close();
});

describe("a task whose workers keep dying", () => {
  // Up to five worker processes started and killed in turn: ~13 s, slower on a loaded box.
  it(`is dead-lettered after ${MAX_DELIVER} worker deaths, its step fails, and a replay completes it`, { timeout: 150_000 }, async () => {
    const api = createApiClient(nc, { prefix });
    await api.putFlow({ id: "nap", steps: [{ id: "nap", handler: "delay", input: { ms: 4000 } }] });
    const { executionId } = await api.start("nap", { input: {} });
    const taskId = `${executionId}/nap`;

    // Deliveries of attempt 1, each to a worker that is SIGKILLed while it runs the task, until the
    // server has made all five. Usually that is five workers; on a loaded box a worker that misses
    // its first heartbeat (1 s here) while it starts up is handed the task a second time itself,
    // so fewer workers can use up the five deliveries. The server's count is what the test checks.
    const jsm0 = await jetstreamManager(nc);
    const deliveredSoFar = async () =>
      (await jsm0.consumers.info(names.streams.tasks, names.consumers.taskPool("us-east-1", "delay", "normal")).catch(() => undefined))?.delivered.consumer_seq ?? 0;
    let workers = 0;
    while ((await deliveredSoFar()) < MAX_DELIVER) {
      const worker = await mesh.startWorker({ handlers: ["delay"] });
      workers++;
      // A deadline, not a wait: it passes as soon as the delivery is seen (about a second).
      await waitFor(() => progress.of(taskId, 1).some((p) => p.at > worker.readyAt!), {
        timeoutMs: 30_000,
        message: `a delivery of the task to ${worker.name}`,
      });
      await worker.kill("SIGKILL");
    }
    expect(workers).toBeGreaterThanOrEqual(3);
    expect(workers).toBeLessThanOrEqual(MAX_DELIVER);

    // A healthy worker joins. On nats-server 2.9 the server gives up on the task (MAX_DELIVERIES
    // advisory) when it next tries to deliver it, which needs a waiting pull: with no worker left
    // the task just waits; this worker's pull makes the server give up instead of delivering it.
    const healthy = await mesh.startWorker({ handlers: ["delay"] });
    const jsm = await jetstreamManager(nc);
    const failed = await waitFor(
      async () => {
        const view = await api.get(executionId);
        return view.status === "failed" ? view : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "the execution to fail with DELIVERIES_EXHAUSTED" },
    );
    expect(failed.error?.code).toBe("DELIVERIES_EXHAUSTED");
    // The healthy worker was not handed a sixth delivery.
    expect(progress.of(taskId, 1).some((p) => p.at > healthy.readyAt!)).toBe(false);
    expect(failed.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["nap", "failed", 1]]);

    const { deadTasks } = await api.listDeadTasks();
    expect(deadTasks.map((d) => [d.id, d.reason, d.deliveries, d.handler, d.lastError?.code])).toEqual([
      [`${taskId}:1`, "deliveries_exhausted", MAX_DELIVER, "delay", "DELIVERIES_EXHAUSTED"],
    ]);
    await waitFor(async () => (await jsm.streams.info(names.streams.dlq)).state.messages === 1, { message: "the dead letter in FM_DLQ" });
    // The parked copy is gone from the work queue, so nothing holds the pool.
    await waitFor(async () => (await jsm.streams.info(names.streams.tasks)).state.messages === 0, { message: "the task stream to be empty" });

    // Then a replay: attempt 2 runs to completion on the healthy worker.
    const replay = await api.replayDeadTasks([`${taskId}:1`]);
    expect(replay).toEqual({ replayed: [`${taskId}:1`], refused: [] });
    const done = await waitFor(
      async () => {
        const view = await api.get(executionId);
        return view.status === "completed" ? view : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "the replayed execution to complete" },
    );
    expect(done.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["nap", "completed", 2]]);
    expect(progress.of(taskId, 2).some((p) => p.at > healthy.readyAt!)).toBe(true);
  });
});
