/**
 * Backpressure: the task stream has a limit (max_msgs, discard new). Near it, request/reply
 * starts are refused with OVERLOADED and starts published to FM_FLOWS wait there; once workers
 * drain the queue, everything that was accepted runs. Real nats-server and PostgreSQL.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { encode, FmError } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const LIMIT = 40;
const nats = useNatsServer();
const pg = useTestDatabase();

// Nobody serves `delay` at first, so its queue fills up.
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }], engine: { taskQueueLimit: LIMIT } }));

describe("backpressure", () => {
  it("refuses starts with OVERLOADED while the task queue is full, keeps published starts waiting, and loses nothing", async () => {
    await mesh.putFlow({ id: "slow", steps: [{ id: "nap", handler: "delay", input: { ms: 1 } }] });
    const jsm = await jetstreamManager(mesh.nc);
    const depth = async (stream: string) => (await jsm.streams.info(stream)).state.messages;

    // Request/reply starts until the engine says OVERLOADED (it checks the depth every second).
    const accepted: string[] = [];
    const refusal = await waitFor(
      async () => {
        try {
          accepted.push((await mesh.api.start("slow", { input: {} })).executionId);
          return undefined;
        } catch (err) {
          if (err instanceof FmError && err.code === "OVERLOADED") return err;
          throw err;
        }
      },
      { timeoutMs: 20_000, intervalMs: 0, message: "an OVERLOADED refusal" },
    );
    expect(refusal.message).toMatch(/nearly full/);
    const { rows: held } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox");
    console.log(`[backpressure] limit ${LIMIT}: ${accepted.length} starts accepted before OVERLOADED; ${held[0]!.n} outbox row(s) waiting for room`);
    expect(accepted.length).toBeGreaterThanOrEqual(LIMIT * 0.9);
    // Whatever was accepted beyond the limit waits in the engine's outbox, not lost.
    expect(await depth(mesh.names.streams.tasks)).toBeLessThanOrEqual(LIMIT);

    // Published starts (no reply to refuse them on) stay in FM_FLOWS while the queue is full.
    for (let i = 0; i < 5; i++) mesh.nc.publish(mesh.names.subjects.flowStart("slow"), encode({ executionId: `pub-${i}`, input: {} }));
    await waitFor(async () => (await depth(mesh.names.streams.flows)) === 5, { message: "5 published starts held in FM_FLOWS" });
    const { rows: before } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions WHERE id LIKE 'pub-%'");
    expect(before[0]!.n).toBe(0);

    // A worker drains the queue: every accepted start and every published one completes, once.
    await mesh.startWorker({ handlers: ["delay"], concurrency: 8 });
    const all = [...accepted, ...Array.from({ length: 5 }, (_, i) => `pub-${i}`)];
    await waitFor(
      async () => {
        const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions WHERE status = 'completed' AND id = ANY($1)", [all]);
        return rows[0]!.n === all.length;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: `all ${all.length} executions completed` },
    );
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions");
    expect(rows[0]!.n).toBe(all.length);
    expect(await depth(mesh.names.streams.flows)).toBe(0);
    // And new starts are taken again.
    const again = await waitFor(() => mesh.api.start("slow", { input: {} }).catch(() => undefined), { timeoutMs: 10_000, message: "a start accepted again" });
    await mesh.waitForStatus(again.executionId, "completed");
  });
});
