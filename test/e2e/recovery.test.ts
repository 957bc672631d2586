/**
 * "Nothing is lost", the fast part: the built engine and worker binaries as child processes,
 * each killed once at a bad moment. The long randomized version is test/chaos/chaos.test.ts
 * (`npm run test:chaos`).
 *
 *  (a) a worker SIGKILLed while it runs a 3 s delay step: JetStream redelivers the task (same
 *      attempt) to another worker process once the heartbeat timeout passes;
 *  (b) the engine SIGKILLed and restarted in the middle of 100 executions;
 *  (c) nats-server restarted (same port and store) in the middle of 100 executions.
 */
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type pg from "pg";
import { afterAll, describe, it, type ExpectStatic } from "vitest";
import { createApiClient, createNames, encode, type ApiClient, type ExecutionView, type Names } from "@flowmonkey/shared";
import { connectReconnecting, ExecEventRecorder, openPool, ProgressRecorder } from "../chaos/support/observe.js";
import { useMeshProcesses, type MeshProcesses } from "../chaos/support/processes.js";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { uniquePrefix } from "../support/nats.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const HEARTBEAT_TIMEOUT_MS = 2000;
const meshProcesses = useMeshProcesses();

interface Case {
  nats: NatsServerHandle;
  prefix: string;
  names: Names;
  mesh: MeshProcesses;
  nc: NatsConnection;
  api: ApiClient;
  db: pg.Pool;
  events: ExecEventRecorder;
  progress: ProgressRecorder;
}

// Released in reverse order after all tests (the tests run concurrently).
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * Its own nats-server (case c restarts it while the others run), database and prefix, an
 * observer connection, no processes yet.
 */
async function setUp(): Promise<Case> {
  const prefix = uniquePrefix();
  const names = createNames(prefix);
  const nats = await startNatsServer();
  cleanups.push(() => nats.stop());
  const database: TestDatabase = await createTestDatabase();
  cleanups.push(() => database.drop());
  const mesh = meshProcesses({ natsUrl: nats.url, databaseUrl: database.url, prefix, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });
  cleanups.push(() => mesh.killAll());
  const nc = await connectReconnecting(nats.url);
  cleanups.push(() => nc.close());
  const db = openPool(database.url);
  cleanups.push(() => db.end());
  const events = new ExecEventRecorder(nc, names);
  const progress = new ProgressRecorder(nc, names);
  cleanups.push(() => events.stop(), () => progress.stop());
  await nc.flush();
  return { nats, prefix, names, mesh, nc, api: createApiClient(nc, { prefix, timeoutMs: 5000 }), db, events, progress };
}

async function statusCounts(db: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: number }>("SELECT status, count(*)::int AS n FROM executions GROUP BY status");
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** 100 starts, each stored in FM_FLOWS (JetStream publish, retried until acked; the executionId makes a repeat harmless). */
async function startMany(c: Case, flowId: string, ids: string[]): Promise<void> {
  const js = jetstream(c.nc);
  await Promise.all(
    ids.map((executionId, i) =>
      waitFor(() => js.publish(c.names.subjects.flowStart(flowId), encode({ executionId, input: { i } }), { msgID: executionId }).then(() => true), {
        timeoutMs: 20_000,
        intervalMs: 100,
        message: `start ${executionId} stored`,
      }),
    ),
  );
}

const THREE_STEPS = {
  id: "three",
  steps: [
    { id: "s1", handler: "echo", input: { i: "{% input.i %}" } },
    { id: "s2", handler: "delay", input: { ms: 1000 } },
    { id: "s3", handler: "echo", input: { i: "{% steps.s1.i %}" } },
  ],
  output: "{% steps.s3.i %}",
};

/** Every execution completed with its own output, and each of its 3 steps ran as exactly one attempt whose result was applied. */
async function expectEachCompletedOnce(expect: ExpectStatic, c: Case, ids: string[]): Promise<void> {
  const executions = await c.db.query<{ id: string; status: string; output: unknown }>("SELECT id, status, output FROM executions ORDER BY id");
  expect(executions.rows.map((r) => r.id)).toEqual([...ids].sort());
  for (const r of executions.rows) expect({ id: r.id, status: r.status, output: r.output }).toEqual({ id: r.id, status: "completed", output: ids.indexOf(r.id) });
  const tasks = await c.db.query<{ execution_id: string; rows: number; steps: string[]; attempts: number[]; statuses: string[] }>(
    `SELECT execution_id, count(*)::int AS rows, array_agg(step_id ORDER BY step_id) AS steps,
            array_agg(DISTINCT attempt) AS attempts, array_agg(DISTINCT status) AS statuses
       FROM tasks GROUP BY execution_id`,
  );
  expect(tasks.rows).toHaveLength(ids.length);
  const wrong = tasks.rows.filter(
    (t) => t.rows !== 3 || t.steps.join() !== "s1,s2,s3" || t.attempts.join() !== "1" || t.statuses.join() !== "completed",
  );
  expect(wrong).toEqual([]);
  // No result applied twice: one distinct step.completed per step, one distinct completed per execution.
  // (The same event re-sent from an outbox row after an engine crash is identical; events are at-least-once.)
  expect(c.events.duplicates("step.completed", { distinct: true })).toEqual([]);
  expect(c.events.duplicates("completed", { distinct: true })).toEqual([]);
}

// Concurrent: each case has its own server, database and processes; the file takes as long as (b).
describe.concurrent("recovery from a killed process (built binaries as child processes)", () => {
  it("(a) a worker SIGKILLed mid-step: its task is redelivered to a second worker process as the same attempt, applied once", async ({ expect }) => {
    const c = await setUp();
    await c.mesh.startEngine();
    const first = await c.mesh.startWorker();
    await c.api.putFlow({
      id: "nap",
      steps: [
        { id: "nap", handler: "delay", input: { ms: 3000 } },
        { id: "after", handler: "echo", input: { waited: "{% steps.nap.waitedMs >= 3000 %}" } },
      ],
    });
    const { executionId } = await c.api.start("nap", { input: {} });
    // The only worker reports progress: it is running the step now.
    await waitFor(() => c.progress.of(`${executionId}/nap`, 1).length > 0, { timeoutMs: 10_000, message: "progress of the delay step" });

    const killedAt = Date.now();
    const exit = await first.kill("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    const second = await c.mesh.startWorker();

    const stepDone = await waitFor(
      () => c.events.firstAfter(killedAt, (e) => e.executionId === executionId && e.type === "step.completed" && e.stepId === "nap"),
      { timeoutMs: 20_000, message: "the delay step to complete on the second worker" },
    );
    const recoveryMs = stepDone.at - killedAt;
    console.log(
      `[recovery a] worker SIGKILL → delay step (3000 ms) completed on another worker process: ${recoveryMs} ms ` +
        `(heartbeat timeout ${HEARTBEAT_TIMEOUT_MS} ms; replacement worker ready after ${second.readyAt! - killedAt} ms)`,
    );
    // Redelivered no later than the heartbeat timeout (+ slack), then a full 3 s run.
    expect(recoveryMs).toBeGreaterThanOrEqual(3000);
    expect(recoveryMs).toBeLessThan(HEARTBEAT_TIMEOUT_MS + 3000 + 3000);

    const view: ExecutionView = await waitFor(
      async () => {
        const v = await c.api.get(executionId).catch(() => undefined);
        return v?.status === "completed" ? v : undefined;
      },
      { timeoutMs: 10_000, message: "execution completed" },
    );
    expect(view.output).toEqual({ waited: true });
    expect(view.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
      ["nap", "completed", 1],
      ["after", "completed", 1],
    ]);
    const { rows } = await c.db.query<{ step_id: string; attempt: number; status: string; worker_id: string }>(
      "SELECT step_id, attempt, status, worker_id FROM tasks WHERE execution_id = $1 ORDER BY step_id",
      [executionId],
    );
    expect(rows).toEqual([
      { step_id: "after", attempt: 1, status: "completed", worker_id: second.workerId },
      { step_id: "nap", attempt: 1, status: "completed", worker_id: second.workerId },
    ]);
    expect(c.events.count(executionId, "step.completed", "nap")).toBe(1);
    expect(c.events.count(executionId, "completed")).toBe(1);
  });

  it("(b) the engine SIGKILLed and restarted mid-run of 100 executions: all complete, each step applied once", async ({ expect }) => {
    const c = await setUp();
    const engine = await c.mesh.startEngine();
    await Promise.all([c.mesh.startWorker(), c.mesh.startWorker()]);
    await c.api.putFlow(THREE_STEPS);
    const ids = Array.from({ length: 100 }, (_, i) => `b-${String(i).padStart(3, "0")}`);
    const started = Date.now();
    await startMany(c, "three", ids);
    await waitFor(async () => ((await statusCounts(c.db)).completed ?? 0) >= 20, { timeoutMs: 30_000, message: "20 executions completed" });

    const before = await statusCounts(c.db);
    const killedAt = Date.now();
    await engine.kill("SIGKILL");
    const replacement = await c.mesh.startEngine();
    await waitFor(async () => ((await statusCounts(c.db)).completed ?? 0) === 100, { timeoutMs: 55_000, intervalMs: 100, message: "all 100 completed" });
    const doneAt = Date.now();
    const firstAfter = c.events.firstAfter(replacement.readyAt!, (e) => e.type === "completed");
    console.log(
      `[recovery b] engine SIGKILL at ${JSON.stringify(before)}: replacement ready after ${replacement.readyAt! - killedAt} ms, ` +
        `first execution completed ${firstAfter ? firstAfter.at - killedAt : "?"} ms after the kill, all 100 after ${doneAt - killedAt} ms ` +
        `(run total ${doneAt - started} ms; exec events received twice: ${c.events.republished()})`,
    );
    await expectEachCompletedOnce(expect, c, ids);
  });

  it("(c) nats-server restarted (same port and store) mid-run of 100 executions: all complete, each step applied once", async ({ expect }) => {
    const c = await setUp();
    await c.mesh.startEngine();
    await Promise.all([c.mesh.startWorker(), c.mesh.startWorker()]);
    await c.api.putFlow(THREE_STEPS);
    const ids = Array.from({ length: 100 }, (_, i) => `c-${String(i).padStart(3, "0")}`);
    const started = Date.now();
    await startMany(c, "three", ids);
    await waitFor(async () => ((await statusCounts(c.db)).completed ?? 0) >= 20, { timeoutMs: 30_000, message: "20 executions completed" });

    const before = await statusCounts(c.db);
    const restartAt = Date.now();
    await c.nats.restart();
    const upAt = Date.now();
    await waitFor(async () => ((await statusCounts(c.db)).completed ?? 0) === 100, { timeoutMs: 55_000, intervalMs: 100, message: "all 100 completed" });
    const doneAt = Date.now();
    const firstAfter = c.events.firstAfter(upAt, (e) => e.type === "completed");
    console.log(
      `[recovery c] nats-server restart at ${JSON.stringify(before)}: server back after ${upAt - restartAt} ms, ` +
        `first execution completed ${firstAfter ? firstAfter.at - restartAt : "?"} ms after the restart began, all 100 after ${doneAt - restartAt} ms ` +
        `(run total ${doneAt - started} ms; exec events received twice: ${c.events.republished()})`,
    );
    expect(c.mesh.all.every((p) => p.alive)).toBe(true);
    await expectEachCompletedOnce(expect, c, ids);
  });
});
