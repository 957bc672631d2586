/**
 * Retention: ended executions (with their task rows) and old rejections are forgotten after
 * the retention period; running ones are never touched; a flow's own `retention:` overrides
 * the engine's; usage totals outlive the rows. Real nats-server and PostgreSQL, a 2-second
 * retention so the test can watch it happen.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg_ = useTestDatabase();
let mesh: TestMesh;
let db: pg.Client;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg_.url, engine: { retention: "2s", retentionSweepIntervalMs: 200, metrics: { port: 0 } } });
  await mesh.putFlow({ id: "quick", steps: [{ id: "say", handler: "echo", input: { text: "hi" } }] });
  await mesh.putFlow({ id: "long", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
  await mesh.putFlow({ id: "kept", retention: "forever", steps: [{ id: "say", handler: "echo", input: { text: "kept" } }] });
  await mesh.putFlow({ id: "brief", retention: "3s", steps: [{ id: "say", handler: "echo", input: { text: "brief" } }] });
  db = new pg.Client({ connectionString: pg_.url });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await mesh?.close();
});

const forgotten = (executionId: string) =>
  mesh.api.get(executionId).then(
    () => undefined,
    (err: { code?: string }) => (err.code === "EXECUTION_NOT_FOUND" ? true : undefined),
  );

const count = async (sql: string, params: unknown[]) => Number((await db.query<{ n: string }>(sql, params)).rows[0]!.n);

describe("retention", () => {
  it("forgets an ended execution and its tasks after the period, never a running one", async () => {
    const ended = await mesh.api.start("quick", { input: {} });
    await mesh.waitForStatus(ended.executionId, "completed");
    const running = await mesh.api.start("long", { input: {} });
    await mesh.waitForStatus(running.executionId, "running");
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1", [ended.executionId])).toBe(1);

    await waitFor(() => forgotten(ended.executionId), {
      timeoutMs: 15_000,
      message: "the ended execution to be forgotten",
    });
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1", [ended.executionId])).toBe(0);
    // The running one is older than the period by now, and still there.
    expect((await mesh.api.get(running.executionId)).status).toBe("running");
    await mesh.api.cancel(running.executionId);
  });

  it("forgets old rejections", async () => {
    mesh.nc.publish(mesh.names.subjects.flowStart("quick"), new TextEncoder().encode("not json"));
    await waitFor(async () => ((await count("SELECT count(*) AS n FROM rejections", [])) > 0 ? true : undefined), { message: "the bad start recorded" });
    const left = await waitFor(async () => ((await count("SELECT count(*) AS n FROM rejections", [])) === 0 ? 0 : undefined), {
      timeoutMs: 15_000,
      message: "the rejection forgotten",
    });
    expect(left).toBe(0);
  });

  it("keeps a flow's executions for the flow's own period, not the engine's", async () => {
    const kept = await mesh.api.start("kept", { input: {} });
    const brief = await mesh.api.start("brief", { input: {} });
    const quick = await mesh.api.start("quick", { input: {} });
    for (const e of [kept, brief, quick]) await mesh.waitForStatus(e.executionId, "completed");
    await waitFor(() => forgotten(quick.executionId), { timeoutMs: 15_000, message: "the engine's period (2 s) to forget the default flow's execution" });
    await waitFor(() => forgotten(brief.executionId), { timeoutMs: 15_000, message: "the flow's own period (3 s) to forget its execution" });
    // "forever": still there well past both periods.
    expect((await mesh.api.get(kept.executionId)).status).toBe("completed");
    expect(await count("SELECT count(*) AS n FROM executions WHERE id = $1 AND retain_ms = 0", [kept.executionId])).toBe(1);
  });

  it("rolls a forgotten execution's usage up first, so the tenant's totals do not change", async () => {
    const tenantId = `retained-${Date.now()}`;
    const started = await mesh.api.start("quick", { input: {}, tenantId });
    await mesh.waitForStatus(started.executionId, "completed");
    const before = (await mesh.api.usage({ tenantId })).tenants;
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ tenantId, executions: 1, tasks: 1 });
    expect(await count("SELECT count(*) AS n FROM usage_rollups WHERE tenant_id = $1", [tenantId])).toBe(0);

    await waitFor(() => forgotten(started.executionId), { timeoutMs: 15_000, message: "the execution to be forgotten" });
    expect(await count("SELECT count(*) AS n FROM usage_rollups WHERE tenant_id = $1", [tenantId])).toBeGreaterThan(0);
    expect((await mesh.api.usage({ tenantId })).tenants).toEqual(before);
  });

  it("counts what it forgot in fm_retention_purged_total", async () => {
    const metricsUrl = mesh.engine.metricsUrl!;
    const read = async () => {
      const text = await (await fetch(metricsUrl)).text();
      const line = text.split("\n").find((l) => l.startsWith("fm_retention_purged_total{") && l.includes('kind="executions"'));
      return line ? Number(line.split(" ").at(-1)) : undefined;
    };
    const first = (await read()) ?? 0;
    const e = await mesh.api.start("quick", { input: {} });
    await mesh.waitForStatus(e.executionId, "completed");
    await waitFor(() => forgotten(e.executionId), { timeoutMs: 15_000, message: "the execution to be forgotten" });
    const after = await waitFor(async () => {
      const n = await read();
      return n !== undefined && n > first ? n : undefined;
    }, { message: "the purge counted" });
    expect(after).toBeGreaterThan(first);
  });
});
