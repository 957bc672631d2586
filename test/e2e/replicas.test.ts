import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { createWorker } from "@flowmonkey/worker";
import { createApiClient, createLogger, createNames, encode, type ExecutionEvent } from "@flowmonkey/shared";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { startProcessUntilReady } from "../support/ready-process.js";

const ENGINE_MAIN = fileURLToPath(new URL("../../engine/dist/main.js", import.meta.url));
const EXECUTIONS = 200;
const nats = useNatsServer();
const pg = useTestDatabase();
const prefix = uniquePrefix();
const names = createNames(prefix);
const engines: ChildProcess[] = [];
let nc: NatsConnection;

function startEngineProcess(): Promise<ChildProcess> {
  const env = { NATS_URL: nats.url, DATABASE_URL: pg.url, FM_PREFIX: prefix, LOG_LEVEL: "info", FM_LOG_PRETTY: "false" };
  return startProcessUntilReady(process.execPath, [ENGINE_MAIN], env, { ready: '"engine started"', started: (child) => engines.push(child) });
}

beforeAll(async () => {
  nc = await connect({ servers: nats.url });
  // Started one after the other: both migrate the same database under the advisory lock.
  await Promise.all([startEngineProcess(), startEngineProcess()]);
});

afterAll(async () => {
  await Promise.all(
    engines.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
        }),
    ),
  );
  await nc?.close();
});

describe("two engine processes on the same streams and database", () => {
  it("complete each of 200 executions exactly once", async () => {
    const api = createApiClient(nc, { prefix });
    await api.putFlow({
      id: "three",
      steps: [
        { id: "s1", handler: "echo", input: { i: "{% input.i %}" } },
        { id: "s2", handler: "echo", input: { i: "{% steps.s1.i %}" } },
        { id: "s3", handler: "echo", input: { i: "{% steps.s2.i %}" } },
      ],
    });
    const worker = createWorker({ nc, log: createLogger({ name: "w", level: "silent" }), prefix, region: "us-east-1", handlers: ["echo"], concurrency: 32 });
    await worker.start();
    const completed = new Map<string, number>();
    const sub = nc.subscribe(names.subjects.execOfFlow("three"));
    void (async () => {
      for await (const m of sub) {
        const e = JSON.parse(new TextDecoder().decode(m.data)) as ExecutionEvent;
        if (e.type === "completed") completed.set(e.executionId, (completed.get(e.executionId) ?? 0) + 1);
      }
    })();
    await nc.flush();
    for (let i = 0; i < EXECUTIONS; i++) nc.publish(names.subjects.flowStart("three"), encode({ input: { i } }));

    await waitFor(() => completed.size === EXECUTIONS, { timeoutMs: 30_000, message: "200 completed events" });
    const db = await import("pg");
    const client = new db.default.Client({ connectionString: pg.url });
    await client.connect();
    try {
      const executions = await client.query<{ status: string; n: number }>("SELECT status, count(*)::int AS n FROM executions GROUP BY status");
      expect(executions.rows).toEqual([{ status: "completed", n: EXECUTIONS }]);
      const tasks = await client.query<{ n: number; attempts: number; completed: number }>(
        "SELECT count(*)::int AS n, max(attempt)::int AS attempts, count(*) FILTER (WHERE status = 'completed')::int AS completed FROM tasks",
      );
      expect(tasks.rows[0]).toEqual({ n: EXECUTIONS * 3, attempts: 1, completed: EXECUTIONS * 3 });
      const outputs = await client.query<{ n: number }>(
        "SELECT count(DISTINCT (output->>'i'))::int AS n FROM executions WHERE (output->>'i')::int BETWEEN 0 AND $1",
        [EXECUTIONS - 1],
      );
      expect(outputs.rows[0]!.n).toBe(EXECUTIONS);
    } finally {
      await client.end();
    }
    // Exactly one `completed` event per execution, from whichever replica finished it.
    expect([...completed.values()].every((n) => n === 1)).toBe(true);
    sub.unsubscribe();
    await worker.close();
    expect(engines.every((e) => e.exitCode === null)).toBe(true);
  });

  it("run a 600-item map step to the end, in item order, when one of them is killed midway", async () => {
    const api = createApiClient(nc, { prefix });
    await api.putFlow({ id: "fan", steps: [{ id: "each", handler: "echo", map: { items: "{% [1..input.n] %}", concurrency: 16 }, input: { i: "{% index %}", v: "{% item %}" } }] });
    const worker = createWorker({ nc, log: createLogger({ name: "w", level: "silent" }), prefix, region: "us-east-1", handlers: ["echo"], concurrency: 32 });
    await worker.start();
    const { executionId } = await api.start("fan", { input: { n: 600 } });
    // Both replicas take results off the same consumer; one dies without a goodbye.
    await waitFor(async () => ((await api.get(executionId)).steps[0]!.map?.done ?? 0) >= 100 || undefined, { timeoutMs: 30_000, message: "100 items done" });
    engines[0]!.kill("SIGKILL");
    const done = await waitFor(async () => {
      const view = await api.get(executionId);
      return view.status === "completed" ? view : undefined;
    }, { timeoutMs: 90_000, intervalMs: 200, message: "the map to complete on the surviving engine" });
    expect(done.output).toEqual(Array.from({ length: 600 }, (_, i) => ({ i, v: i + 1 })));
    expect(done.steps[0]!.map).toEqual({ total: 600, done: 600, failed: 0, running: 0 });
    const db = await import("pg");
    const client = new db.default.Client({ connectionString: pg.url });
    await client.connect();
    try {
      const items = await client.query<{ n: number; completed: number }>(
        "SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'completed')::int AS completed FROM map_items WHERE execution_id = $1",
        [executionId],
      );
      expect(items.rows[0]).toEqual({ n: 600, completed: 600 });
      // One completed attempt per item: no item's result was applied twice.
      const tasks = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM tasks WHERE execution_id = $1 AND status = 'completed'",
        [executionId],
      );
      expect(tasks.rows[0]!.n).toBe(600);
    } finally {
      await client.end();
    }
    await worker.close();
  });
});
