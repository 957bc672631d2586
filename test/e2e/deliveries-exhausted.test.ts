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
  // Five worker processes started and killed in turn: ~13 s, slower on a loaded box.
  it(`is dead-lettered after ${MAX_DELIVER} worker deaths, its step fails, and a replay completes it`, { timeout: 150_000 }, async () => {
    const api = createApiClient(nc, { prefix });
    await api.putFlow({ id: "nap", steps: [{ id: "nap", handler: "delay", input: { ms: 4000 } }] });
    const { executionId } = await api.start("nap", { input: {} });
    const taskId = `${executionId}/nap`;

    // Five deliveries of attempt 1, each to a worker that is SIGKILLed while it runs the task.
    for (let delivery = 1; delivery <= MAX_DELIVER; delivery++) {
      const worker = await mesh.startWorker({ handlers: ["delay"] });
      // A deadline, not a wait: it passes as soon as the delivery is seen (about a second); a loaded
      // 2-core CI box took over 10 s once to start a worker process and hand it the redelivery.
      await waitFor(() => progress.of(taskId, 1).some((p) => p.at > worker.readyAt!), {
        timeoutMs: 30_000,
        message: `delivery ${delivery} of the task to ${worker.name}`,
      });
      await worker.kill("SIGKILL");
    }

    // No worker now: the next expiry of the heartbeat timeout makes the server give up.
    const jsm = await jetstreamManager(nc);
    const failed = await waitFor(
      async () => {
        const view = await api.get(executionId);
        return view.status === "failed" ? view : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "the execution to fail with DELIVERIES_EXHAUSTED" },
    );
    expect(failed.error?.code).toBe("DELIVERIES_EXHAUSTED");
    expect(failed.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["nap", "failed", 1]]);

    const { deadTasks } = await api.listDeadTasks();
    expect(deadTasks.map((d) => [d.id, d.reason, d.deliveries, d.handler, d.lastError?.code])).toEqual([
      [`${taskId}:1`, "deliveries_exhausted", MAX_DELIVER, "delay", "DELIVERIES_EXHAUSTED"],
    ]);
    await waitFor(async () => (await jsm.streams.info(names.streams.dlq)).state.messages === 1, { message: "the dead letter in FM_DLQ" });
    // The parked copy is gone from the work queue, so nothing holds the pool.
    await waitFor(async () => (await jsm.streams.info(names.streams.tasks)).state.messages === 0, { message: "the task stream to be empty" });

    // A healthy worker, then a replay: attempt 2 runs to completion.
    const healthy = await mesh.startWorker({ handlers: ["delay"] });
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
