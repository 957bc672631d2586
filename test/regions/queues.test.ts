/**
 * The queue views across domains, on a hub and the eu-west-1 leaf from nats-config/*.conf:
 * `fm.api.queues` (GET /v1/queues, `flowmonkey queues`) and the engine's fm_queue_* series read
 * the pool consumers of the hub's task stream AND of the eu domain's, and list every region of
 * the topology with its domain. With the eu link cut, the reply still comes (at once), with
 * eu-west-1 shown as unreachable and the hub's pools as before; the metrics keep eu's last
 * numbers and say it is unreachable.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../gateway/test/integration/run-cli.js";
import { useTestDatabase } from "../support/postgres.js";
import { scrape, valueOf } from "../support/prometheus.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { ROLES, HUB_DOMAIN, HUB_REGION, startTopology, type Topology } from "../support/topology.js";
import { testCerts } from "../support/tls.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const pg = useTestDatabase();
let topology: Topology;
let mesh: RegionMesh;

beforeAll(async () => {
  topology = await startTopology([EU]);
  mesh = await startRegionMesh(topology, { databaseUrl: pg.url, engine: { metrics: { port: 0, queueRefreshMs: 100 } } });
  await mesh.startWorker(HUB_REGION, { handlers: ["echo"] });
  await mesh.startWorker(EU, { handlers: ["delay"], concurrency: 1 });
  await mesh.api.putFlow({ id: "eu-nap", steps: [{ id: "nap", handler: "delay", region: EU, input: { ms: 60_000 } }] });
}, 60_000);
afterAll(async () => {
  await mesh?.close();
  await topology?.stop();
});

const cli = (...args: string[]) =>
  runCli({ natsUrl: topology.hub.url, prefix: mesh.names.prefix, env: testCerts().clientEnv(ROLES.gateway) }, ...args);

describe("queues across domains", () => {
  it("shows the pools of the hub's and the eu domain's task streams, and every region of the topology", async () => {
    // One eu slot: one nap runs, the other waits in the eu domain's queue.
    await mesh.api.start("eu-nap", {});
    await mesh.api.start("eu-nap", {});
    const reply = await waitFor(
      async () => {
        const r = await mesh.api.queues({});
        const eu = r.queues.find((q) => q.region === EU && q.handler === "delay" && q.priority === "normal");
        return eu?.pending === 1 && eu.ackPending === 1 ? r : undefined;
      },
      { message: "the eu delay pool with one task running and one queued" },
    );
    expect(reply.queues.map((q) => `${q.region}/${q.handler}/${q.priority}`)).toEqual([
      `${EU}/delay/high`,
      `${EU}/delay/normal`,
      `${EU}/delay/low`,
      `${HUB_REGION}/echo/high`,
      `${HUB_REGION}/echo/normal`,
      `${HUB_REGION}/echo/low`,
    ]);
    expect(reply.regions).toEqual([
      { region: EU, domain: EU, reachable: true },
      { region: HUB_REGION, domain: HUB_DOMAIN, reachable: true },
    ]);
    expect((await mesh.api.queues({ region: EU })).regions).toEqual([{ region: EU, domain: EU, reachable: true }]);

    const samples = await waitFor(
      async () => {
        // The steady state, not a refresh taken while the queued nap had just arrived and the
        // running one was not fetched yet (lanes fetch when a task arrives).
        const s = await scrape(mesh.engine.metricsUrl!);
        const pool = { region: EU, handler: "delay", priority: "normal" };
        return valueOf(s, "fm_queue_depth", pool) === 1 && valueOf(s, "fm_queue_ack_pending", pool) === 1 ? s : undefined;
      },
      { message: "fm_queue_depth 1 and fm_queue_ack_pending 1 of the eu pool" },
    );
    expect(valueOf(samples, "fm_queue_waiting_pulls", { region: HUB_REGION, handler: "echo", priority: "normal" })).toBeGreaterThanOrEqual(0);
    expect(valueOf(samples, "fm_queue_region_reachable", { region: EU, domain: EU })).toBe(1);
    expect(valueOf(samples, "fm_queue_region_reachable", { region: HUB_REGION, domain: HUB_DOMAIN })).toBe(1);

    // The CLI, as the config's gateway user: it only asks fm.api.queues.
    const human = await cli("queues", "--handler", "delay");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`${EU}\\s+delay\\s+normal\\s+1\\s+1`));
    expect(human.stdout).not.toMatch(/unreachable/);
  });

  it("shows a region whose link is cut as unreachable, and still answers for the others at once", async () => {
    const link = topology.leaves[EU]!.link;
    link.cut();
    try {
      const asked = Date.now();
      const reply = await mesh.api.queues({});
      const tookMs = Date.now() - asked;
      expect(reply.regions.map((r) => [r.region, r.domain, r.reachable])).toEqual([
        [EU, EU, false],
        [HUB_REGION, HUB_DOMAIN, true],
      ]);
      expect(reply.regions[0]?.error).toBeTruthy();
      // The hub's pools as before; the eu pools are not made up (no rows rather than zeros).
      expect(new Set(reply.queues.map((q) => q.region))).toEqual(new Set([HUB_REGION]));
      expect(tookMs).toBeLessThan(3000);

      // Metrics: eu's last numbers are kept (not shown as drained), and eu is flagged unreachable.
      const samples = await waitFor(
        async () => {
          const s = await scrape(mesh.engine.metricsUrl!);
          return valueOf(s, "fm_queue_region_reachable", { region: EU, domain: EU }) === 0 ? s : undefined;
        },
        { message: "fm_queue_region_reachable 0 for eu" },
      );
      expect(valueOf(samples, "fm_queue_depth", { region: EU, handler: "delay", priority: "normal" })).toBe(1);
      expect(valueOf(samples, "fm_queue_region_reachable", { region: HUB_REGION, domain: HUB_DOMAIN })).toBe(1);

      const human = await cli("queues");
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(new RegExp(`${HUB_REGION}\\s+echo\\s+normal`));
      expect(human.stdout).toContain(`${EU} (domain ${EU}): unreachable`);
      const json = await cli("queues", "--json");
      expect(JSON.parse(json.stdout).regions).toContainEqual(expect.objectContaining({ region: EU, reachable: false }));
    } finally {
      link.restore();
    }
    await topology.waitForLink(EU);
    const back = await waitFor(
      async () => {
        const r = await mesh.api.queues({ region: EU });
        return r.regions[0]?.reachable ? r : undefined;
      },
      { message: "eu reachable again" },
    );
    expect(back.queues.find((q) => q.handler === "delay" && q.priority === "normal")).toMatchObject({ pending: 1, ackPending: 1 });
  });
});
