/**
 * Region-local queues and results that come home (issue #5), on a hub and two leaf regions
 * started from nats-config/*.conf:
 *  - a step pinned to eu-west-1 is stored in the eu domain's task stream (never the hub's) and
 *    runs on an eu worker connected to the eu leaf;
 *  - with the eu link cut while tasks are held in the region, they keep running; their results
 *    wait in the region's results stream and reach the hub's engine when the link returns;
 *    every execution completes, each eu step applied once.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestDatabase } from "../support/postgres.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { ROLES, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const pg = useTestDatabase();
let topology: Topology;
let mesh: RegionMesh;
/** An operator's view of the eu leaf's own domain (works while the link is cut). */
let euLocal: NatsConnection;

beforeAll(async () => {
  topology = await startTopology([EU, "ap-south-1"]);
  mesh = await startRegionMesh(topology, { databaseUrl: pg.url });
  await mesh.startWorker("us-east-1", { handlers: ["echo"] });
  await mesh.startWorker(EU, { handlers: ["delay"], concurrency: 2 });
  euLocal = await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine);
  await mesh.api.putFlow({
    id: "eu-pinned",
    steps: [
      { id: "intake", handler: "echo", input: { n: "{% input.n %}" } },
      { id: "process", handler: "delay", region: EU, input: { ms: "{% input.ms %}" } },
      { id: "report", handler: "echo", input: { done: "{% input.n %}" } },
    ],
  });
  await mesh.api.putFlow({ id: "eu-transform", steps: [{ id: "t", handler: "transform", region: EU, input: { expression: "n * 2", data: "{% input %}" } }] });
}, 60_000);
afterAll(async () => {
  await mesh?.close();
  await topology?.stop();
});

async function streamSeq(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.last_seq;
}

describe("region-local queues", () => {
  it("stores an eu-pinned step's task in the eu domain and runs it on an eu worker", async () => {
    const hubTasksBefore = await streamSeq(await topology.connectAs(topology.hub, ROLES.engine), mesh.names.streams.tasks);
    const euTasksBefore = await streamSeq(euLocal, mesh.names.streams.tasks);
    const { executionId } = await mesh.api.start("eu-pinned", { input: { n: 1, ms: 10 } });
    const view = await mesh.waitForStatus(executionId, "completed");
    expect(view.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
      ["intake", "completed", 1],
      ["process", "completed", 1],
      ["report", "completed", 1],
    ]);
    // One task (process) stored at the leaf; two (intake, report) at the hub.
    expect(await streamSeq(euLocal, mesh.names.streams.tasks)).toBe(euTasksBefore + 1);
    expect(await streamSeq(await topology.connectAs(topology.hub, ROLES.engine), mesh.names.streams.tasks)).toBe(hubTasksBefore + 2);
  });

  it("keeps running a region's held tasks while its link is cut; results arrive when it returns, each once", async () => {
    const n = 8;
    const resultsStream = mesh.names.regionStreams.results(EU);
    const resultsBefore = await streamSeq(euLocal, resultsStream);
    const tasksBefore = await streamSeq(euLocal, mesh.names.streams.tasks);
    // 8 tasks of 300 ms on 2 slots: about 1.2 s of work held in the region.
    const ids = await Promise.all(Array.from({ length: n }, (_, i) => mesh.api.start("eu-pinned", { input: { n: i, ms: 300 } }).then((r) => r.executionId)));
    await waitFor(async () => (await streamSeq(euLocal, mesh.names.streams.tasks)) >= tasksBefore + n, { message: "all eu tasks stored at the leaf" });

    const link = topology.leaves[EU]!.link;
    link.cut();
    const cutAt = Date.now();
    const finishedBeforeCut = (await streamSeq(euLocal, resultsStream)) - resultsBefore;
    expect(finishedBeforeCut).toBeLessThan(n); // work is held in the region when the link goes
    // The region works on alone: every result is stored in its own results stream.
    await waitFor(async () => (await streamSeq(euLocal, resultsStream)) >= resultsBefore + n, { timeoutMs: 15_000, message: "eu results stored during the outage" });
    const views = await Promise.all(ids.map((id) => mesh.api.get(id)));
    // Results stored after the cut cannot have reached the hub yet.
    expect(views.filter((v) => v.status === "running").length).toBeGreaterThanOrEqual(n - finishedBeforeCut);
    expect(link.isCut).toBe(true);

    link.restore();
    await topology.waitForLink(EU);
    const done = await Promise.all(ids.map((id) => mesh.waitForStatus(id, "completed", 20_000)));
    const drainMs = Date.now() - cutAt;
    for (const view of done) {
      expect(view.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
        ["intake", "completed", 1],
        ["process", "completed", 1],
        ["report", "completed", 1],
      ]);
    }
    // Each task ran once: n results for n tasks, no redelivery.
    expect(await streamSeq(euLocal, resultsStream)).toBe(resultsBefore + n);
    console.info(`[regions] link outage: ${n} results held in ${EU} reached the hub; cut → all completed in ${drainMs} ms`);
  });

  it("starts a worker in a region cut off from the hub; it runs the tasks the region holds", async () => {
    const n = 3;
    const tasksBefore = await streamSeq(euLocal, mesh.names.streams.tasks);
    const resultsStream = mesh.names.regionStreams.results(EU);
    const resultsBefore = await streamSeq(euLocal, resultsStream);
    // No eu worker serves transform yet: the tasks wait in the eu domain.
    const ids = await Promise.all(Array.from({ length: n }, (_, i) => mesh.api.start("eu-transform", { input: { n: i } }).then((r) => r.executionId)));
    await waitFor(async () => (await streamSeq(euLocal, mesh.names.streams.tasks)) >= tasksBefore + n, { message: "transform tasks stored at the leaf" });
    const link = topology.leaves[EU]!.link;
    link.cut();
    try {
      await mesh.startWorker(EU, { handlers: ["transform"] });
      await waitFor(async () => (await streamSeq(euLocal, resultsStream)) >= resultsBefore + n, { message: "results stored in eu while cut off" });
    } finally {
      link.restore();
    }
    await topology.waitForLink(EU);
    const done = await Promise.all(ids.map((id) => mesh.waitForStatus(id, "completed")));
    expect(done.map((v) => v.steps[0]?.output).sort()).toEqual([0, 2, 4]);
  });
});
