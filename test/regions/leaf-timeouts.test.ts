/**
 * The engine's own timeouts reach leaf regions, on a hub and the eu-west-1 leaf from
 * nats-config/*.conf: an eu attempt whose worker took it and went silent (no result, no ack,
 * JetStream's redelivery far off) is timed out by the deadline sweep with TASK_TIMEOUT. The
 * sweep leaves an overdue attempt alone while its pool still has undelivered tasks or does not
 * exist; it used to look for the pool on the hub's task stream only, where no eu pool is, so an
 * eu attempt was put off forever.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTaskPool } from "@flowmonkey/shared";
import { useTestDatabase } from "../support/postgres.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { ROLES, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const pg = useTestDatabase();
let topology: Topology;
let mesh: RegionMesh;

beforeAll(async () => {
  topology = await startTopology([EU]);
  mesh = await startRegionMesh(topology, { databaseUrl: pg.url, engine: { taskDeadlineGraceMs: 0, deadlineSweepIntervalMs: 100 } });
}, 60_000);
afterAll(async () => {
  await mesh?.close();
  await topology?.stop();
});

describe("an eu attempt whose result never comes", () => {
  it("is timed out by the engine (TASK_TIMEOUT) once its deadline passes", async () => {
    // The eu pool, opened as an eu worker opens it; redelivery a minute away, so only the engine's clock can end the attempt.
    const nc = await topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU));
    await ensureTaskPool(await jetstreamManager(nc), mesh.names, EU, "echo", "normal", { ackWaitMs: 60_000 });
    const pool = await jetstream(nc).consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool(EU, "echo", "normal"));
    await mesh.api.putFlow({ id: "eu-silent", steps: [{ id: "s", handler: "echo", region: EU, timeoutMs: 1000, input: {} }] });
    const { executionId } = await mesh.api.start("eu-silent", {});
    // The "worker" takes the task and says nothing more.
    const taken = await waitFor(async () => (await pool.next({ expires: 1000 })) ?? undefined, { message: "the eu task delivered" });
    expect(taken.subject).toBe(mesh.names.subjects.task(EU, "echo", "normal"));

    const failed = await mesh.waitForStatus(executionId, "failed", 15_000);
    expect(failed.error?.code).toBe("TASK_TIMEOUT");
    expect(failed.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["s", "failed", 1]]);
  });
});
