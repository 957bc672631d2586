/**
 * Retention: ended executions (with their task rows) and old rejections are forgotten after
 * the retention period; running ones are never touched. Real nats-server and PostgreSQL, a
 * 2-second retention so the test can watch it happen.
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
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg_.url, engine: { retentionDays: 2 / 86_400, retentionSweepIntervalMs: 200 } });
  await mesh.putFlow({ id: "quick", steps: [{ id: "say", handler: "echo", input: { text: "hi" } }] });
  await mesh.putFlow({ id: "long", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
  db = new pg.Client({ connectionString: pg_.url });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await mesh?.close();
});

const count = async (sql: string, params: unknown[]) => Number((await db.query<{ n: string }>(sql, params)).rows[0]!.n);

describe("retention", () => {
  it("forgets an ended execution and its tasks after the period, never a running one", async () => {
    const ended = await mesh.api.start("quick", { input: {} });
    await mesh.waitForStatus(ended.executionId, "completed");
    const running = await mesh.api.start("long", { input: {} });
    await mesh.waitForStatus(running.executionId, "running");
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1", [ended.executionId])).toBe(1);

    await waitFor(() => mesh.api.get(ended.executionId).then(() => undefined, (err: { code?: string }) => (err.code === "EXECUTION_NOT_FOUND" ? true : undefined)), {
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
});
