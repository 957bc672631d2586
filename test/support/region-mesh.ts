/**
 * A multi-region mesh in the test process over a Topology: the engine connected to the hub as
 * the config's `engine` user, and workers connected to their own region's server as that
 * region's `worker-<region>` user (so the tests also exercise the config's permissions).
 */
import { createEngine, type Engine, type EngineOptions } from "@flowmonkey/engine";
import { createWorker, type Worker, type WorkerOptions } from "@flowmonkey/worker";
import { createApiClient, createLogger, createNames, regionTopology, Releasers, type ApiClient, type ExecutionView, type Names } from "@flowmonkey/shared";
import { ROLES, HUB_DOMAIN, HUB_REGION, type Topology } from "./topology.js";
import { waitFor } from "./wait.js";

/** The nats-config files grant the `fm` prefix only. */
export const REGION_MESH_PREFIX = "fm";

export interface RegionMesh {
  names: Names;
  api: ApiClient;
  engine: Engine;
  startWorker(region: string, options?: Partial<Omit<WorkerOptions, "nc" | "log" | "region">>): Promise<Worker>;
  waitForStatus(executionId: string, status: ExecutionView["status"], timeoutMs?: number): Promise<ExecutionView>;
  close(): Promise<void>;
}

export async function startRegionMesh(topology: Topology, options: { databaseUrl: string; engine?: Partial<EngineOptions> }): Promise<RegionMesh> {
  const log = createLogger({ name: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const releasers = new Releasers();
  const prefix = REGION_MESH_PREFIX;
  const nc = await topology.connectAs(topology.hub, ROLES.engine);
  const engine = createEngine({
    nc,
    log: log.child({ component: "engine", region: HUB_REGION }),
    prefix,
    region: HUB_REGION,
    databaseUrl: options.databaseUrl,
    heartbeatTimeoutMs: 10_000,
    topology: regionTopology({ hubDomain: HUB_DOMAIN, regionDomains: topology.regionDomains }),
    ...options.engine,
  });
  await engine.start();
  releasers.add("engine", () => engine.close());
  const api = createApiClient(nc, { prefix });
  return {
    names: createNames(prefix),
    api,
    engine,
    async startWorker(region, more = {}) {
      const leaf = topology.leaves[region];
      const server = leaf ? leaf.server : topology.hub;
      const wnc = await topology.connectAs(server, ROLES.worker(region));
      const worker = createWorker({
        nc: wnc,
        log: log.child({ component: "worker", region }),
        prefix,
        region,
        ...(leaf ? { hubDomain: HUB_DOMAIN } : {}),
        heartbeatTimeoutMs: 10_000,
        fetchExpiresMs: 1000,
        ...more,
      });
      await worker.start();
      releasers.add(`worker ${region}`, () => worker.close());
      return worker;
    },
    waitForStatus: (executionId, status, timeoutMs = 15_000) =>
      waitFor(
        async () => {
          const view = await api.get(executionId);
          return view.status === status ? view : undefined;
        },
        { timeoutMs, message: `execution ${executionId} to reach ${status}` },
      ),
    close: () => releasers.releaseAll(),
  };
}
