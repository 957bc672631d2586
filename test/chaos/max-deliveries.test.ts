/**
 * PRODUCT BUG (fails today): a task whose worker dies five times is lost.
 *
 * The task pool consumers have `max_deliver: 5` (shared/src/nats/provision.ts, ensureTaskPool).
 * When five workers in a row die while holding the same task attempt (a handler that crashes
 * its process, or plain bad luck under chaos), nats-server stops delivering it: the message
 * stays parked in the work-queue stream, nothing publishes a DeadTask on `fm.dlq.<region>.<handler>`
 * (DESIGN.md: "tasks that exhausted their deliveries; replayable"; docs/PROTOCOL.md lists it as
 * not implemented), and the engine has no timeout of its own for a dispatched step. The
 * execution stays `running` forever, though healthy workers are idle — against DESIGN.md
 * invariant 3 ("No task is lost when a worker ... is killed mid-flight").
 *
 * Expected: once the deliveries are exhausted the step is settled — failed (or retried as a new
 * attempt per its retry policy) and the task dead-lettered — so the execution reaches a
 * terminal state.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient, createNames } from "@flowmonkey/shared";
import { connectReconnecting, ProgressRecorder } from "./support/observe.js";
import { useMeshProcesses, type MeshProcesses } from "./support/processes.js";
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
  it(`is not lost after ${MAX_DELIVER} worker deaths: the execution still ends (failed or retried), the task is dead-lettered`, async () => {
    const api = createApiClient(nc, { prefix });
    await api.putFlow({ id: "nap", steps: [{ id: "nap", handler: "delay", input: { ms: 4000 } }] });
    const { executionId } = await api.start("nap", { input: {} });
    const taskId = `${executionId}/nap`;

    // Five deliveries of attempt 1, each to a worker that is SIGKILLed while it runs the task.
    for (let delivery = 1; delivery <= MAX_DELIVER; delivery++) {
      const worker = await mesh.startWorker({ handlers: ["delay"] });
      await waitFor(() => progress.of(taskId, 1).some((p) => p.at > worker.readyAt!), {
        timeoutMs: 10_000,
        message: `delivery ${delivery} of the task to ${worker.name}`,
      });
      await worker.kill("SIGKILL");
    }

    // A healthy worker from now on. The task should be settled one way or another.
    const healthy = await mesh.startWorker({ handlers: ["delay"] });
    const jsm = await jetstreamManager(nc);
    const outcome = await waitFor(
      async () => {
        const view = await api.get(executionId);
        if (["completed", "failed", "cancelled"].includes(view.status)) return `execution ${view.status}`;
        const dlq = await jsm.streams.info(names.streams.dlq);
        return dlq.state.messages > 0 ? "dead-lettered" : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, message: "the execution to end or its task to be dead-lettered" },
    ).catch(() => "stuck");

    const view = await api.get(executionId);
    const tasks = await jsm.streams.info(names.streams.tasks);
    const pool = await jsm.consumers.info(names.streams.tasks, names.consumers.taskPool("us-east-1", "delay"));
    const diagnosis =
      `after ${MAX_DELIVER} worker deaths and 20 s with a healthy worker (${healthy.name}): execution ${view.status}, ` +
      `step ${JSON.stringify(view.steps.map((s) => [s.stepId, s.status, s.attempts]))}; ` +
      `${names.streams.tasks} holds ${tasks.state.messages} message(s); consumer ${pool.name}: max_deliver ${pool.config.max_deliver}, ` +
      `pending ${pool.num_pending}, ack pending ${pool.num_ack_pending}, redelivered ${pool.num_redelivered}; ` +
      `progress from the healthy worker: ${progress.of(taskId, 1).filter((p) => p.at > healthy.readyAt!).length} updates`;
    console.log(`[max-deliveries] ${outcome}: ${diagnosis}`);
    expect(outcome, diagnosis).not.toBe("stuck");
  });
});
