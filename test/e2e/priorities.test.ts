/**
 * Priorities: a high task published behind thousands of queued normal tasks is taken by the
 * worker within a few tasks, not after the backlog. Real nats-server and PostgreSQL; engine and
 * worker in this process.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { encode } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const BACKLOG = 5000;
const CONCURRENCY = 4;
const nats = useNatsServer();
const pg = useTestDatabase();

// No worker serves `delay` yet: the backlog builds up first.
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] }));

describe("priorities", () => {
  it(`a high task queued behind ${BACKLOG} normal tasks starts within a few tasks`, async () => {
    await mesh.putFlow({ id: "work", steps: [{ id: "nap", handler: "delay", input: { ms: 20 } }] });
    const js = jetstream(mesh.nc);
    const jsm = await jetstreamManager(mesh.nc);
    const start = (executionId: string, priority: "normal" | "high") =>
      js.publish(mesh.names.subjects.flowStart("work"), encode({ executionId, input: {}, priority }), { msgID: executionId });
    for (let i = 0; i < BACKLOG; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, BACKLOG - i) }, (_, k) => start(`n-${i + k}`, "normal")));
    }
    const queued = async () => (await jsm.streams.info(mesh.names.streams.tasks)).state.messages;
    await waitFor(async () => (await queued()) === BACKLOG, { timeoutMs: 60_000, intervalMs: 200, message: `${BACKLOG} normal tasks queued` });
    await start("urgent", "high");
    await waitFor(async () => (await queued()) === BACKLOG + 1, { timeoutMs: 10_000, message: "the high task queued behind them" });

    await mesh.startWorker({ handlers: ["delay"], concurrency: CONCURRENCY });
    await mesh.waitForStatus("urgent", "completed", 30_000);
    // Every normal task that started before the high one has finished by the time 100 have.
    const started = async (where: string) =>
      (await mesh.engine.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status = 'completed' AND ${where}`)).rows[0]!.n;
    await waitFor(async () => (await started("execution_id <> 'urgent'")) >= 100, { timeoutMs: 30_000, message: "100 normal tasks done" });
    const ahead = await started(
      "execution_id <> 'urgent' AND started_at < (SELECT started_at FROM tasks WHERE execution_id = 'urgent')",
    );
    console.log(`[priorities] normal tasks that started before the high one (queued behind ${BACKLOG}): ${ahead}; worker concurrency ${CONCURRENCY}`);
    expect(ahead).toBeLessThanOrEqual(CONCURRENCY * 3);

    // The same while the worker is busy with the backlog: the high lane hears of the new task at once.
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status <> 'completed'");
    expect(rows[0]!.n).toBeGreaterThan(1000);
    await start("urgent-2", "high");
    await mesh.waitForStatus("urgent-2", "completed", 30_000);
    const done = await started("true");
    await waitFor(async () => (await started("true")) >= done + 100, { timeoutMs: 30_000, message: "100 more tasks done" });
    // Counted from the engine's dispatch of the high task: what the worker does with it, not how
    // long the busy engine took to take the start (tens of ms, in which the worker keeps going).
    const { rows: between } = await mesh.engine.db.query<{ n: number }>(
      `WITH urgent AS (SELECT dispatched_at, started_at FROM tasks WHERE execution_id = 'urgent-2')
       SELECT count(*)::int AS n FROM tasks, urgent
        WHERE execution_id LIKE 'n-%' AND tasks.started_at > urgent.dispatched_at AND tasks.started_at < urgent.started_at`,
    );
    console.log(`[priorities] normal tasks started between the engine dispatching a high task and its start (worker busy): ${between[0]!.n}`);
    expect(between[0]!.n).toBeLessThanOrEqual(CONCURRENCY * 3);
  });
});
