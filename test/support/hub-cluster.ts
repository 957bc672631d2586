/**
 * A clustered hub for tests: three nats-servers from nats-config/hub-cluster-{1,2,3}.conf
 * (free ports, a temporary store each), an engine creating everything with 3 replicas, two
 * us-east-1 workers serving `echo`, and a two-step flow. Clients list the nodes in order
 * without randomizing, so every client sits on node 1 until it is lost.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createEngine, type Engine } from "@flowmonkey/engine";
import { createWorker } from "@flowmonkey/worker";
import { createApiClient, createLogger, createNames, encode, type ApiClient } from "@flowmonkey/shared";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { ROLES } from "./topology.js";
import { testCerts, tlsVars } from "./tls.js";
import { waitFor } from "./wait.js";

const CONFIG_DIR = resolve(import.meta.dirname, "../../nats-config");
const names = createNames("fm");

export interface HubCluster {
  nodes: NatsServerHandle[];
  engine: Engine;
  api: ApiClient;
  connectAs(role: string): Promise<NatsConnection>;
  /** Stores a start of the two-step flow in FM_FLOWS, retried across a node's death the way a client would. */
  publishStart(i: number): Promise<unknown>;
  /** Executions in `status`, counted in the engine's database. */
  count(status: string): Promise<number>;
  close(): Promise<void>;
}

/** A port nobody listens on right now (the cluster's routes must be known before the nodes start). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export async function startHubCluster(databaseUrl: string): Promise<HubCluster> {
  const log = createLogger({ name: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const store = await mkdtemp(join(tmpdir(), "fm-hub-cluster-"));
    cleanups.push(() => rm(store, { recursive: true, force: true }));
    // Every listener's port chosen here, distinct: a node given -1 could take another node's
    // route port from the kernel before that node binds it (seen: "bind: address already in use").
    const ports = new Set<number>();
    while (ports.size < 12) ports.add(await freePort());
    const [clusterPorts, clientPorts, leafPorts, httpPorts] = [0, 3, 6, 9].map((i) => [...ports].slice(i, i + 3)) as [number[], number[], number[], number[]];
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
    const nodes = await Promise.all(
      [1, 2, 3].map((n) =>
        startNatsServer({
          configFile: join(CONFIG_DIR, `hub-cluster-${n}.conf`),
          vars: {
            HUB_CLIENT_PORT: clientPorts[n - 1]!,
            HUB_LEAF_PORT: leafPorts[n - 1]!,
            HUB_HTTP: `127.0.0.1:${httpPorts[n - 1]!}`,
            HUB_CLUSTER_PORT: clusterPorts[n - 1]!,
            HUB_LEAF_ADVERTISE: "127.0.0.1:1",
            HUB_ROUTES: routes,
            HUB_STORE_DIR: join(store, `node-${n}`),
            ...tlsVars("HUB", `hub-${n}`),
          },
        }),
      ),
    );
    for (const n of nodes) cleanups.push(() => n.stop());
    const connectAs = async (role: string) => {
      const nc = await connect({ servers: nodes.map((n) => n.url), noRandomize: true, tls: testCerts().clientTls(role), maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true });
      cleanups.push(() => nc.close());
      return nc;
    };
    const nc = await connectAs(ROLES.engine);
    // JetStream answers once the cluster has elected its meta leader.
    await waitFor(async () => (await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo()).domain === "hub", { timeoutMs: 20_000, message: "the cluster's JetStream" });
    const engine = createEngine({ nc, log, prefix: "fm", databaseUrl, heartbeatTimeoutMs: 5000, replicas: 3 });
    await engine.start();
    cleanups.push(() => engine.close());
    for (let i = 0; i < 2; i++) {
      const worker = createWorker({ nc: await connectAs(ROLES.worker("us-east-1")), log, prefix: "fm", region: "us-east-1", handlers: ["echo"], concurrency: 32, heartbeatTimeoutMs: 5000, fetchExpiresMs: 1000 });
      await worker.start();
      cleanups.push(() => worker.close());
    }
    const api = createApiClient(nc, { prefix: "fm", timeoutMs: 10_000 });
    await api.putFlow({ id: "two-steps", steps: [{ id: "a", handler: "echo", input: { n: "{% input.n %}" } }, { id: "b", handler: "echo", input: { n: "{% input.n %}" } }] });
    const js = jetstream(nc);
    return {
      nodes,
      engine,
      api,
      connectAs,
      publishStart: (i) =>
        waitFor(() => js.publish(names.subjects.flowStart("two-steps"), encode({ executionId: `x${i}`, input: { n: i } }), { msgID: `x${i}` }).then(() => true), {
          timeoutMs: 30_000,
          intervalMs: 100,
          message: `start ${i} to be stored`,
        }),
      count: async (status) => (await engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions WHERE status = $1", [status])).rows[0]?.n ?? 0,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Steps applied and attempts retried: every step of `flows` two-step flows once, none retried. */
export async function stepTally(engine: Engine): Promise<{ executions: number; steps: number; retried: number; failed: number }> {
  const { rows } = await engine.db.query<{ executions: number; steps: number; retried: number; failed: number }>(
    `SELECT (SELECT count(*)::int FROM executions) AS executions,
            (SELECT count(*)::int FROM tasks WHERE status = 'completed') AS steps,
            (SELECT count(*)::int FROM tasks WHERE attempt > 1) AS retried,
            (SELECT count(*)::int FROM tasks WHERE status = 'failed') AS failed`,
  );
  return rows[0]!;
}
