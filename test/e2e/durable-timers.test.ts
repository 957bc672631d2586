/**
 * Durable timers: a retry waiting out its backoff and an attempt's deadline live in PostgreSQL,
 * so an engine that stops and is replaced by another one still fires them. Real nats-server and
 * PostgreSQL; engines and worker in this process.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient, createLogger, type ApiClient } from "@flowmonkey/shared";
import { createEngine, type Engine } from "@flowmonkey/engine";
import { createWorker, defineHandler, RetryableFailure, type Worker } from "@flowmonkey/worker";
import { z } from "zod";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const BACKOFF_MS = 2000;
const nats = useNatsServer();
const pg = useTestDatabase();
const prefix = uniquePrefix();
const log = createLogger({ name: "test", level: "silent" });
let nc: NatsConnection;
let api: ApiClient;
let worker: Worker;
const engines: Engine[] = [];
const seen = new Map<string, number>();

/** Fails the first time it sees an execution, succeeds after. */
const flaky = defineHandler({
  type: "flaky",
  version: "1",
  input: z.object({}).passthrough(),
  execute(ctx) {
    const n = (seen.get(ctx.task.executionId) ?? 0) + 1;
    seen.set(ctx.task.executionId, n);
    if (n === 1) throw new RetryableFailure("UNAVAILABLE", "first try fails");
    return { tries: n };
  },
});

async function startEngine(): Promise<Engine> {
  const engine = createEngine({ nc, log, prefix, databaseUrl: pg.url, heartbeatTimeoutMs: 10_000 });
  await engine.start();
  engines.push(engine);
  return engine;
}

beforeAll(async () => {
  nc = await connect({ servers: nats.url });
  api = createApiClient(nc, { prefix });
  await startEngine();
  worker = createWorker({ nc, log, prefix, region: "us-east-1", handlers: [flaky], concurrency: 4, heartbeatTimeoutMs: 10_000, fetchExpiresMs: 1000 });
  await worker.start();
});
afterAll(async () => {
  await worker?.close();
  for (const e of engines) await e.close();
  await nc?.close();
});

describe("durable timers", () => {
  it("a retry scheduled by one engine is dispatched by its replacement after the backoff", async () => {
    await api.putFlow({
      id: "retrying",
      steps: [{ id: "call", handler: "flaky", input: {}, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: BACKOFF_MS, jitter: false } }],
    });
    const { executionId } = await api.start("retrying", { input: {} });
    const first = engines[0]!;
    const failedAt = await waitFor(
      async () => {
        const { rows } = await first.db.query<{ at: Date }>("SELECT completed_at AS at FROM tasks WHERE execution_id = $1 AND attempt = 1 AND status = 'failed'", [executionId]);
        return rows[0]?.at.getTime();
      },
      { message: "attempt 1 failed" },
    );
    // The retry is now a timer in PostgreSQL. The engine that set it goes away before it is due.
    await first.close();
    expect(Date.now() - failedAt).toBeLessThan(BACKOFF_MS);
    const second = await startEngine();
    await waitFor(async () => (await api.get(executionId)).status === "completed", { timeoutMs: 15_000, message: "the execution completed" });
    const { rows } = await second.db.query<{ attempt: number; status: string; dispatched_at: Date }>(
      "SELECT attempt, status, dispatched_at FROM tasks WHERE execution_id = $1 ORDER BY attempt",
      [executionId],
    );
    expect(rows.map((r) => [r.attempt, r.status])).toEqual([
      [1, "failed"],
      [2, "completed"],
    ]);
    // Not early: the backoff was kept across the restart.
    expect(rows[1]!.dispatched_at.getTime() - failedAt).toBeGreaterThanOrEqual(BACKOFF_MS - 50);
  });
});
