/**
 * Tasks/s limits per lane and per tenant: a burst of starts becomes a steady stream of tasks,
 * nothing is dropped, and one tenant's burst does not hold back another tenant. Real
 * nats-server and PostgreSQL; engine and worker in this process.
 */
import { describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo", "transform"], concurrency: 32 }],
  engine: { rateLimits: [{ region: "*", handler: "echo", perSecond: 10 }], tenantRateLimit: 5 },
}));

async function startTimes(ids: string[]): Promise<number[]> {
  await waitFor(
    async () => (await mesh.engine.db.query("SELECT 1 FROM executions WHERE status = 'completed' AND id = ANY($1)", [ids])).rowCount === ids.length,
    { timeoutMs: 20_000, intervalMs: 100, message: `${ids.length} executions completed` },
  );
  const { rows } = await mesh.engine.db.query<{ at: Date }>("SELECT started_at AS at FROM tasks WHERE execution_id = ANY($1) ORDER BY started_at", [ids]);
  return rows.map((r) => r.at.getTime());
}

describe("rate limits", () => {
  it("spreads a burst of 30 starts on a 10 tasks/s lane over about two seconds, losing none", async () => {
    await mesh.putFlow({ id: "ping", steps: [{ id: "ping", handler: "echo", input: { n: "{% input.n %}" } }] });
    const ids = await Promise.all(Array.from({ length: 30 }, (_, n) => mesh.api.start("ping", { input: { n } }).then((r) => r.executionId)));
    const at = await startTimes(ids);
    const first = at[0]!;
    console.log(`[rates] 30 tasks at 10/s: started over ${at[29]! - first} ms; 10th at +${at[9]! - first} ms, 20th at +${at[19]! - first} ms`);
    expect(at[9]! - first).toBeLessThan(600); // one second's worth goes at once
    expect(at[29]! - first).toBeGreaterThanOrEqual(1500); // the other 20 at 10/s
  });

  it("holds a tenant to its own rate without holding back another tenant", async () => {
    await mesh.putFlow({ id: "calc", steps: [{ id: "calc", handler: "transform", input: { expression: "n * 2", data: { n: 1 } } }] });
    const burst = await Promise.all(Array.from({ length: 15 }, () => mesh.api.start("calc", { input: {}, tenantId: "acme" }).then((r) => r.executionId)));
    const other = (await mesh.api.start("calc", { input: {}, tenantId: "globex" })).executionId;
    const acme = await startTimes(burst);
    const [globex] = await startTimes([other]);
    console.log(`[rates] acme's 15 tasks at 5/s took ${acme[14]! - acme[0]!} ms; globex's one task started ${globex! - acme[0]!} ms after acme's first`);
    expect(acme[14]! - acme[0]!).toBeGreaterThanOrEqual(1500);
    expect(globex! - acme[0]!).toBeLessThan(1000);
    const { rates } = await mesh.api.lanes();
    expect(rates.map((r) => r.key)).toEqual(expect.arrayContaining(["*/echo", "us-east-1/echo", "acme@us-east-1/transform", "globex@us-east-1/transform"]));
  });
});
