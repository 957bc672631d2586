/**
 * An attempt's deadline is set when the engine dispatches it, also when it goes into the
 * tenant queue instead of JetStream. Once admitted (published) it counts from the admission:
 * before the fix, a task that had waited longer than its timeout was timed out by the engine
 * as soon as a worker took it, though it ran well within its own timeout.
 *
 * Cap 1, each task runs 1.5 s with a 2.5 s timeout (grace 0.3 s): all of them complete.
 */
import { describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["delay"], concurrency: 4 }],
  engine: { tenantMaxInFlight: 1, taskDeadlineGraceMs: 300, deadlineSweepIntervalMs: 100 },
}));

describe("deadlines of tasks that waited for their tenant's turn", () => {
  it("a task admitted from the tenant queue is not timed out while it runs within its timeout", async () => {
    await mesh.putFlow({ id: "job", steps: [{ id: "nap", handler: "delay", timeoutMs: 2500, input: { ms: 1500 } }] });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await mesh.api.start("job", { input: {}, tenantId: "acme" })).executionId);
    const views = await Promise.all(ids.map((id) => mesh.waitForStatus(id, ["completed", "failed"], 20_000)));
    const summary = views.map((v) => `${v.id.slice(0, 8)}: ${v.status}${v.error ? ` (${v.error.code})` : ""}`);
    console.log(`[tenant queue] ${summary.join("; ")}`);
    expect(views.map((v) => v.error?.code ?? v.status)).toEqual(["completed", "completed", "completed"]);
  });
});
