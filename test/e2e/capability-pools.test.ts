/**
 * Capability-qualified worker pools ("only such workers take it"), on a real nats-server and
 * PostgreSQL with the engine and workers in this process: a step that requires `gpu` is routed
 * to the `delay~gpu` pool, which only the gpu worker pulls, while plain tasks stay shared; a
 * worker without gpu that is handed such a task anyway refuses it (CAPABILITY_UNAVAILABLE) and
 * the engine routes the step again, to the gpu worker; a capability pool's task whose deliveries
 * run out is dead-lettered like any other.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import { DeadTask, decode, encode, ensureTaskPool, WORKER_KEYS, type WorkerEntry } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const REGION = "us-east-1";
const GPU = "gpu-worker";
const PLAIN = "plain-worker";
const AVX = "avx-worker";
const nats = useNatsServer();
const pg = useTestDatabase();
// No default worker: each test starts the ones it needs (they are closed with the mesh).
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [] }));

async function attemptsOf(executionIds: string[]) {
  const { rows } = await mesh.engine.db.query<{ execution_id: string; attempt: number; status: string; code: string | null; worker_id: string | null }>(
    "SELECT execution_id, attempt, status, error->>'code' AS code, worker_id FROM tasks WHERE execution_id = ANY($1::text[]) ORDER BY execution_id, attempt",
    [executionIds],
  );
  return rows;
}

async function startAll(flowId: string, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, async () => (await mesh.api.start(flowId, {})).executionId));
}

describe("capability-qualified pools", () => {
  it("runs every task that requires gpu on the gpu worker, while plain tasks are still shared by both", async () => {
    await mesh.startWorker({ handlers: ["delay"], concurrency: 4, worker: { workerId: PLAIN } });
    await mesh.startWorker({ handlers: ["delay"], concurrency: 4, worker: { workerId: GPU, capabilities: ["gpu"] } });
    await mesh.putFlow({ id: "render", steps: [{ id: "frame", handler: "delay", require: ["gpu"], input: { ms: 50 } }] });
    await mesh.putFlow({ id: "plain", steps: [{ id: "nap", handler: "delay", input: { ms: 150 } }] });

    // Both workers are idle and pulling: on one shared pool the plain worker would take about half.
    const gpuRuns = await startAll("render", 16);
    await Promise.all(gpuRuns.map((id) => mesh.waitForStatus(id, ["completed", "failed"], 30_000)));
    const gpuAttempts = await attemptsOf(gpuRuns);
    expect(gpuAttempts.map((a) => [a.attempt, a.status, a.worker_id])).toEqual(gpuRuns.map(() => [1, "completed", GPU]));

    const plainRuns = await startAll("plain", 16);
    await Promise.all(plainRuns.map((id) => mesh.waitForStatus(id, ["completed", "failed"], 30_000)));
    const byWorker = new Map<string, number>();
    for (const a of await attemptsOf(plainRuns)) byWorker.set(a.worker_id ?? "?", (byWorker.get(a.worker_id ?? "?") ?? 0) + 1);
    console.log(`[capability-pools] plain tasks per worker: ${JSON.stringify(Object.fromEntries(byWorker))}`);
    expect([...byWorker.keys()].sort()).toEqual([GPU, PLAIN].sort());

    // The gpu pool is a queue of its own: fm.api.queues lists it beside the plain pool.
    const { queues } = await mesh.api.queues({ region: REGION, handler: "delay" });
    expect(queues.filter((q) => q.priority === "normal").map((q) => q.capabilities)).toEqual([[], ["gpu"]]);
  });

  it("a worker without gpu handed a gpu task refuses it with CAPABILITY_UNAVAILABLE, and the engine routes it to the gpu worker", async () => {
    // Pulls the plain pool and delay~avx512: only it can be handed a task on the latter.
    await mesh.startWorker({ handlers: ["delay"], concurrency: 2, worker: { workerId: AVX, capabilities: ["avx512"] } });
    // The lane is paused so that the real attempt 1 stays parked in the engine while its crafted
    // copy goes to the avx worker; the reroute (attempt 2) is parked too, until the lane resumes.
    await mesh.api.pauseQueue({ region: REGION, handler: "delay", reason: "test: hold the real task" });
    const executionId = "misrouted";
    try {
      await mesh.api.start("render", { executionId });
      await waitFor(async () => ((await mesh.api.queues({ region: REGION, handler: "delay" })).paused[0]?.held ?? 0) >= 1, { message: "attempt 1 parked by the paused lane" });
      const { task } = await mesh.api.getTask(`${executionId}/frame`, 1);
      expect(task.require).toEqual(["gpu"]);
      await jetstream(mesh.nc).publish(mesh.names.subjects.task(REGION, "delay", "normal", ["avx512"]), encode(task), { msgID: `crafted:${task.taskId}:1` });

      const refused = await waitFor(async () => (await attemptsOf([executionId])).find((a) => a.attempt === 1 && a.status === "failed"), {
        message: "attempt 1 refused by the avx worker",
      });
      expect(refused).toMatchObject({ code: "CAPABILITY_UNAVAILABLE", worker_id: AVX });
      // Routed again at once, outside the retry policy (the step has none: one try).
      await waitFor(async () => (await attemptsOf([executionId])).find((a) => a.attempt === 2), { message: "attempt 2 dispatched" });
      expect((await mesh.api.get(executionId)).status).toBe("running");
    } finally {
      await mesh.api.resumeQueue({ region: REGION, handler: "delay" });
    }
    const view = await mesh.waitForStatus(executionId, ["completed", "failed"], 30_000);
    expect(view.status).toBe("completed");
    expect(view.steps.find((s) => s.stepId === "frame")?.history?.map((a) => [a.attempt, a.status, a.workerId, a.error?.code])).toEqual([
      [1, "failed", AVX, "CAPABILITY_UNAVAILABLE"],
      [2, "completed", GPU, undefined],
    ]);
  });

  it("dead-letters a capability pool's task whose deliveries ran out, on fm.dlq.<region>.<handler>", async () => {
    // A registry entry for a tpu worker that serves echo, with no worker behind it: the test
    // plays that worker, taking the task from the echo~tpu pool and handing it back until the
    // server gives up on it.
    const workers = await new Kvm(mesh.nc).open(mesh.names.buckets.workers);
    const phantom: WorkerEntry = {
      workerId: "phantom-tpu",
      region: REGION,
      handlers: ["echo"],
      capabilities: ["tpu"],
      capabilityPools: true,
      concurrency: 1,
      inFlight: 0,
      version: "test",
      host: "test",
      startedAt: new Date().toISOString(),
    };
    await workers.put(WORKER_KEYS.key(phantom.region, phantom.workerId), encode(phantom));
    try {
      const jsm = await jetstreamManager(mesh.nc);
      await ensureTaskPool(jsm, mesh.names, REGION, "echo", "normal", { ackWaitMs: 1000, maxDeliver: 2 }, ["tpu"]);
      const consumer = await jetstream(mesh.nc).consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool(REGION, "echo", "normal", ["tpu"]));
      await mesh.putFlow({ id: "train", steps: [{ id: "epoch", handler: "echo", require: ["tpu"], input: { n: 1 } }] });
      const { executionId } = await mesh.api.start("train", {});

      let deliveries = 0;
      const dead = await waitFor(
        async () => {
          // On 2.9 the server gives up on a task only when it next tries to deliver it: keep a pull waiting.
          const msg = await consumer.next({ expires: 1000 });
          if (msg) {
            expect(msg.subject).toBe(mesh.names.subjects.task(REGION, "echo", "normal", ["tpu"]));
            deliveries++;
            msg.nak();
          }
          return (await mesh.api.listDeadTasks({ handler: "echo" })).deadTasks.find((d) => d.executionId === executionId);
        },
        { timeoutMs: 20_000, intervalMs: 0, message: "the tpu task dead-lettered" },
      );
      expect(deliveries).toBe(2);
      expect([dead.reason, dead.region, dead.handler, dead.attempt]).toEqual(["deliveries_exhausted", REGION, "echo", 1]);
      expect((await mesh.waitForStatus(executionId, "failed")).error?.code).toBe("DELIVERIES_EXHAUSTED");
      const stored = await waitFor(async () => (await jsm.streams.getMessage(mesh.names.streams.dlq, { last_by_subj: mesh.names.subjects.dlq(REGION, "echo") })) ?? undefined, {
        message: "the dead letter on fm.dlq",
      });
      expect(decode(stored.data, DeadTask).task).toMatchObject({ executionId, require: ["tpu"] });
    } finally {
      await workers.delete(WORKER_KEYS.key(phantom.region, phantom.workerId));
    }
  });
});
