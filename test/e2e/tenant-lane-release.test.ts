/**
 * A tenant's attempt that is dispatched and released in the SAME transaction (a
 * parallel step fails while its sibling was just dispatched, so finish() cancels the sibling)
 * must cancel out: before the fix, the release "freed" a slot the lane never counted, then the
 * dispatch was admitted (+1) and published, its result was ignored (the execution was over), and
 * nothing ever released it: with a cap of 1 the tenant's lane was blocked for good.
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
  workers: [{ handlers: ["echo", "delay"], concurrency: 4 }],
  engine: { tenantMaxInFlight: 1 },
}));

const inFlight = async (tenant: string) =>
  (await mesh.engine.db.query<{ n: number }>("SELECT coalesce(sum(in_flight), 0)::int AS n FROM tenant_lanes WHERE tenant_id = $1", [tenant])).rows[0]!.n;

describe("tenant lane counter", () => {
  it("is back to 0 after an execution fails in the transaction that dispatched a sibling step", async () => {
    await mesh.putFlow({
      id: "split",
      steps: [
        { id: "ok", handler: "delay", input: { ms: 10 } },
        { id: "bad", handler: "echo", dependsOn: [], input: { x: '{% $error("boom") %}' } },
      ],
    });
    await mesh.putFlow({ id: "plain", steps: [{ id: "nap", handler: "delay", input: { ms: 10 } }] });

    const { executionId } = await mesh.api.start("split", { input: {}, tenantId: "acme" });
    await mesh.waitForStatus(executionId, "failed");
    // The sibling dispatched in the failing transaction was neither counted nor published.
    expect(await inFlight("acme")).toBe(0);
    const { rows } = await mesh.engine.db.query("SELECT 1 FROM tenant_queue WHERE tenant_id = 'acme'");
    expect(rows).toEqual([]);

    // Consequence: with cap 1, the tenant's next execution on that lane never runs.
    const next = await mesh.api.start("plain", { input: {}, tenantId: "acme" });
    await mesh.waitForStatus(next.executionId, "completed", 8000);
  });
});
