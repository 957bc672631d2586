import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { createWorker } from "@flowmonkey/worker";
import { createApiClient, createLogger, createNames, encode, type ExecutionEvent } from "@flowmonkey/shared";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const ENGINE_MAIN = fileURLToPath(new URL("../../engine/dist/main.js", import.meta.url));
const EXECUTIONS = 200;
const nats = useNatsServer();
const pg = useTestDatabase();
const prefix = uniquePrefix();
const names = createNames(prefix);
const engines: ChildProcess[] = [];
let nc: NatsConnection;

function startEngineProcess(id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [ENGINE_MAIN], {
    env: { ...process.env, NATS_URL: nats.url, DATABASE_URL: pg.url, FM_PREFIX: prefix, LOG_LEVEL: "info", FM_LOG_PRETTY: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  engines.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine ${id} did not start in 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"engine started"')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`engine ${id} exited with ${code}:\n${output}`)));
  });
}

beforeAll(async () => {
  nc = await connect({ servers: nats.url });
  // Started one after the other: both migrate the same database under the advisory lock.
  await Promise.all([startEngineProcess("a"), startEngineProcess("b")]);
});

afterAll(async () => {
  await Promise.all(
    engines.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
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
});
