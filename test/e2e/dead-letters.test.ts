/**
 * Dead letters and the engine's own attempt timeouts, on a real nats-server and PostgreSQL
 * with the engine and workers in this process. (Deliveries running out because the workers
 * holding a task keep dying is test/e2e/deliveries-exhausted.test.ts, with real processes.)
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { DeadTask, decode, ensureTaskPool } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const GRACE_MS = 300;

// Only `fail` is served at first: the timeout case serves `echo` itself, then starts a worker for it.
const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["fail"] }],
  engine: { taskDeadlineGraceMs: GRACE_MS, deadlineSweepIntervalMs: 100 },
}));

async function tasksOf(executionId: string) {
  const { rows } = await mesh.engine.db.query<{ attempt: number; status: string; code: string | null; worker_id: string | null }>(
    "SELECT attempt, status, error->>'code' AS code, worker_id FROM tasks WHERE execution_id = $1 ORDER BY attempt",
    [executionId],
  );
  return rows;
}

describe("dead letters", () => {
  it("dead-letters a step whose retries ran out, lists it, and replays it once as a new attempt", async () => {
    await mesh.putFlow({
      id: "flaky",
      steps: [
        {
          id: "call",
          handler: "fail",
          input: { code: "UPSTREAM_DOWN", message: "upstream said 503", retryable: true },
          retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false },
        },
      ],
    });
    const { executionId } = await mesh.api.start("flaky", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.error?.code).toBe("UPSTREAM_DOWN");

    const id = `${executionId}/call:2`;
    const { deadTasks } = await mesh.api.listDeadTasks({ handler: "fail" });
    expect(deadTasks.map((d) => [d.id, d.reason, d.attempt, d.region, d.lastError?.code])).toEqual([
      [id, "attempts_exhausted", 2, "us-east-1", "UPSTREAM_DOWN"],
    ]);

    // The same dead letter is on fm.dlq.<region>.<handler>, in FM_DLQ.
    const jsm = await jetstreamManager(mesh.nc);
    const stored = await waitFor(
      async () => (await jsm.streams.getMessage(mesh.names.streams.dlq, { last_by_subj: mesh.names.subjects.dlq("us-east-1", "fail") })) ?? undefined,
      { message: "the dead letter on fm.dlq.us-east-1.fail" },
    );
    const dead = decode(stored.data, DeadTask);
    expect([dead.id, dead.reason, dead.task.attempt, dead.task.handler.type, dead.task.input]).toEqual([
      id,
      "attempts_exhausted",
      2,
      "fail",
      { code: "UPSTREAM_DOWN", message: "upstream said 503", retryable: true },
    ]);

    // Replay: the execution runs again with attempt 3, which fails (and is dead-lettered) in turn.
    const replay = await mesh.api.replayDeadTasks([id, "no-such-task:1"]);
    expect(replay.replayed).toEqual([id]);
    expect(replay.refused.map((r) => [r.id, r.code])).toEqual([["no-such-task:1", "DEAD_TASK_NOT_FOUND"]]);
    await waitFor(async () => (await tasksOf(executionId)).length === 3 && (await mesh.api.get(executionId)).status === "failed", {
      message: "the replayed attempt to run and fail",
    });
    expect((await tasksOf(executionId)).map((t) => [t.attempt, t.status, t.code])).toEqual([
      [1, "failed", "UPSTREAM_DOWN"],
      [2, "failed", "UPSTREAM_DOWN"],
      [3, "failed", "UPSTREAM_DOWN"],
    ]);
    // Attempts are numbered and visible per step, each with what came back for it.
    const view = await mesh.api.get(executionId);
    expect(view.steps[0]!.history!.map((h) => [h.attempt, h.status, h.error?.code, h.workerId !== undefined])).toEqual([
      [1, "failed", "UPSTREAM_DOWN", true],
      [2, "failed", "UPSTREAM_DOWN", true],
      [3, "failed", "UPSTREAM_DOWN", true],
    ]);
    const again = await mesh.api.replayDeadTasks([id]);
    expect(again.replayed).toEqual([]);
    expect(again.refused[0]?.message).toMatch(/already replayed/);
    const open = await mesh.api.listDeadTasks({ handler: "fail" });
    expect(open.deadTasks.map((d) => d.id)).toEqual([`${executionId}/call:3`]);
    const all = await mesh.api.listDeadTasks({ handler: "fail", includeReplayed: true });
    expect(all.deadTasks.map((d) => [d.id, d.replayedAt !== undefined])).toEqual([
      [`${executionId}/call:3`, false],
      [id, true],
    ]);
  });

  it("does not dead-letter a non-retryable failure (the handler said it will never work)", async () => {
    await mesh.putFlow({ id: "refuses", steps: [{ id: "no", handler: "fail", input: { retryable: false }, retry: { maxAttempts: 3 } }] });
    const { executionId } = await mesh.api.start("refuses", { input: {} });
    await mesh.waitForStatus(executionId, "failed");
    expect((await tasksOf(executionId)).map((t) => t.status)).toEqual(["failed"]);
    const { rows } = await mesh.engine.db.query("SELECT id FROM dead_tasks WHERE execution_id = $1", [executionId]);
    expect(rows).toEqual([]);
  });
});

describe("attempt timeouts the engine owns", () => {
  it("times out an attempt whose result never comes, then the retry runs on a real worker", async () => {
    await mesh.putFlow({
      id: "lost",
      steps: [
        {
          id: "step",
          handler: "echo",
          input: { hello: "{% input.who %}" },
          timeoutMs: 300,
          retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false },
        },
      ],
    });
    // A "worker" that takes attempt 1 and acknowledges it without ever sending a result.
    const jsm = await jetstreamManager(mesh.nc);
    await ensureTaskPool(jsm, mesh.names, "us-east-1", "echo", "normal", { ackWaitMs: 10_000 });
    const consumer = await jetstream(mesh.nc).consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", "echo", "normal"));
    const { executionId } = await mesh.api.start("lost", { input: { who: "again" } });
    const taken = await consumer.next({ expires: 5000 });
    expect(taken?.json<{ executionId: string; attempt: number }>()).toMatchObject({ executionId, attempt: 1 });
    await taken!.ackAck();

    // Past timeout (300 ms) + grace: the engine fails attempt 1 itself and dispatches attempt 2.
    const timedOut = await waitFor(async () => (await tasksOf(executionId)).find((t) => t.attempt === 1 && t.status === "failed"), {
      timeoutMs: 10_000,
      message: "attempt 1 timed out by the engine",
    });
    expect(timedOut).toMatchObject({ code: "TASK_TIMEOUT", worker_id: "engine" });

    const worker = await mesh.startWorker({ handlers: ["echo"], concurrency: 2 });
    try {
      const view = await mesh.waitForStatus(executionId, "completed");
      expect(view.output).toEqual({ hello: "again" });
      expect((await tasksOf(executionId)).map((t) => [t.attempt, t.status, t.code])).toEqual([
        [1, "failed", "TASK_TIMEOUT"],
        [2, "completed", null],
      ]);
    } finally {
      await worker.close();
    }
  });
});
