/**
 * Fairness between tenants: one tenant's backlog does not starve another tenant's single task.
 * A tenant's tasks in flight per lane (region/handler) are capped; the rest wait in the engine,
 * in order, and enter the queue as earlier ones finish. Real nats-server and PostgreSQL; engine
 * and worker in this process.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { encode } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const BACKLOG = 3000;
const CAP = 20;
const CONCURRENCY = 4;
const nats = useNatsServer();
const pg = useTestDatabase();

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["delay"], concurrency: CONCURRENCY }],
  engine: { tenantMaxInFlight: CAP, deadlineSweepIntervalMs: 200 },
}));

const count = async (sql: string, params: unknown[] = []) => (await mesh.engine.db.query<{ n: number }>(sql, params)).rows[0]!.n;

describe("tenant fairness", () => {
  it(`tenant B's one task runs within a few tasks although tenant A has ${BACKLOG} waiting`, async () => {
    await mesh.putFlow({ id: "job", steps: [{ id: "nap", handler: "delay", input: { ms: 5 } }] });
    const js = jetstream(mesh.nc);
    const jsm = await jetstreamManager(mesh.nc);
    for (let i = 0; i < BACKLOG; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, BACKLOG - i) }, (_, k) =>
          js.publish(mesh.names.subjects.flowStart("job"), encode({ executionId: `a-${i + k}`, tenantId: "acme", input: {} }), { msgID: `a-${i + k}` }),
        ),
      );
    }
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM executions WHERE tenant_id = 'acme'")) === BACKLOG, {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: `${BACKLOG} executions of tenant acme created`,
    });
    const queuedForA = await count("SELECT count(*)::int AS n FROM tenant_queue WHERE tenant_id = 'acme'");
    const inQueueA = (await jsm.streams.info(mesh.names.streams.tasks)).state.messages;
    expect(queuedForA).toBeGreaterThan(BACKLOG / 2);
    expect(inQueueA).toBeLessThanOrEqual(CAP);

    const startedAt = new Date();
    const { executionId } = await mesh.api.start("job", { input: {}, tenantId: "globex" });
    await mesh.waitForStatus(executionId, "completed", 20_000);
    const ahead = await count(
      `SELECT count(*)::int AS n FROM tasks WHERE execution_id LIKE 'a-%' AND started_at > $1
          AND started_at < (SELECT started_at FROM tasks WHERE execution_id = $2)`,
      [startedAt, executionId],
    );
    console.log(
      `[fairness] acme: ${BACKLOG} started, ${queuedForA} waiting in the engine, ${inQueueA} in JetStream (cap ${CAP}); ` +
        `globex's task started after ${ahead} acme tasks`,
    );
    expect(ahead).toBeLessThanOrEqual(CAP + CONCURRENCY);

    // Nothing lost: every acme execution completes, and the lanes are back to empty.
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM executions WHERE status = 'completed'")) === BACKLOG + 1, {
      timeoutMs: 60_000,
      intervalMs: 250,
      message: "every execution completed",
    });
    expect(await count("SELECT count(*)::int AS n FROM tenant_queue")).toBe(0);
    expect(await count("SELECT coalesce(sum(in_flight), 0)::int AS n FROM tenant_lanes")).toBe(0);
  });

  it("a cancelled execution's queued task leaves the queue and frees nothing it never held", async () => {
    await mesh.putFlow({ id: "slow", steps: [{ id: "nap", handler: "delay", input: { ms: 600 } }] });
    const ids = await Promise.all(Array.from({ length: CAP + 5 }, () => mesh.api.start("slow", { input: {}, tenantId: "initech" }).then((r) => r.executionId)));
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM tenant_queue WHERE tenant_id = 'initech'")) === 5, {
      message: "5 tasks over the cap queued in the engine",
    });
    const queued = (await mesh.engine.db.query<{ execution_id: string }>("SELECT execution_id FROM tenant_queue WHERE tenant_id = 'initech'")).rows;
    for (const { execution_id } of queued) await mesh.api.cancel(execution_id);
    expect(await count("SELECT count(*)::int AS n FROM tenant_queue WHERE tenant_id = 'initech'")).toBe(0);
    expect(await count("SELECT in_flight AS n FROM tenant_lanes WHERE tenant_id = 'initech'")).toBe(CAP);
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM executions WHERE status = 'completed' AND id = ANY($1)", [ids])) === CAP, {
      timeoutMs: 30_000,
      message: `the ${CAP} admitted executions completed`,
    });
    expect(await count("SELECT in_flight AS n FROM tenant_lanes WHERE tenant_id = 'initech'")).toBe(0);
  });

  it("admits waiting tasks when a tenant's cap is raised, with nothing else happening on the lane", async () => {
    await mesh.engine.db.query("INSERT INTO tenant_limits (tenant_id, max_in_flight) VALUES ('umbrella', 1)");
    await mesh.putFlow({ id: "hold", steps: [{ id: "nap", handler: "delay", input: { ms: 5000 } }] });
    const ids = await Promise.all(Array.from({ length: 4 }, () => mesh.api.start("hold", { input: {}, tenantId: "umbrella" }).then((r) => r.executionId)));
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM tenant_queue WHERE tenant_id = 'umbrella'")) === 3, { message: "3 waiting behind a cap of 1" });
    await mesh.engine.db.query("UPDATE tenant_limits SET max_in_flight = 10 WHERE tenant_id = 'umbrella'");
    await waitFor(async () => (await count("SELECT count(*)::int AS n FROM tenant_queue WHERE tenant_id = 'umbrella'")) === 0, {
      timeoutMs: 5000,
      message: "the engine's sweep admitted them",
    });
    expect(await count("SELECT in_flight AS n FROM tenant_lanes WHERE tenant_id = 'umbrella'")).toBe(4);
    for (const id of ids) await mesh.api.cancel(id);
    expect(await count("SELECT in_flight AS n FROM tenant_lanes WHERE tenant_id = 'umbrella'")).toBe(0);
  });
});
