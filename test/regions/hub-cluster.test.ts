/**
 * A hub that outgrows one server: three nodes from nats-config/hub-cluster-{1,2,3}.conf form a
 * JetStream cluster, the engine creates streams and buckets with 3 replicas, and one node is
 * SIGKILLed while 200 flows run: all complete, each step applied once.
 *
 * Here the node killed (node 2) holds replicas and leaders but no client: what is measured is
 * the cluster losing a node. test/failover/hub-cluster-client-node.test.ts kills the node every client is on.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubCluster, stepTally, type HubCluster } from "../support/hub-cluster.js";
import { useTestDatabase } from "../support/postgres.js";
import { ROLES } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const FLOWS = 200;
const pg = useTestDatabase();
let hub: HubCluster;

beforeAll(async () => {
  hub = await startHubCluster(pg.url);
}, 60_000);
afterAll(() => hub?.close());

describe("clustered hub", () => {
  it("creates the streams with 3 replicas", async () => {
    const nc = await hub.connectAs(ROLES.engine);
    const info = await (await jetstreamManager(nc)).streams.info("FM_TASKS");
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas?.length).toBe(2);
  });

  it(`completes ${FLOWS} flows, each step once, while one of three nodes is SIGKILLed`, async () => {
    const t0 = Date.now();
    for (let i = 0; i < FLOWS; i++) {
      await hub.publishStart(i);
      if (i === FLOWS / 4) hub.nodes[1]!.kill("SIGKILL");
    }
    await waitFor(async () => (await hub.count("completed")) === FLOWS, { timeoutMs: 60_000, intervalMs: 200, message: `all ${FLOWS} flows to complete` });
    console.info(`[regions] hub cluster: ${FLOWS} flows completed ${Date.now() - t0} ms after the first start, one of three nodes SIGKILLed at start ${FLOWS / 4}`);
    expect(await stepTally(hub.engine)).toEqual({ executions: FLOWS, steps: 2 * FLOWS, retried: 0, failed: 0 });
  }, 90_000);
});
