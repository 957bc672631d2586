/**
 * A hub and leaf regions started from the real nats-config files (hub.conf, leaf-<region>.conf)
 * with their variables set to free ports and temp store dirs. Each leaf dials the hub through a
 * TcpProxy, so a test can cut and restore one region's link.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";
import { testCerts, tlsVars } from "./tls.js";
import { waitFor } from "./wait.js";

const CONFIG_DIR = resolve(import.meta.dirname, "../../nats-config");

/** The roles of nats-config's users; a connection logs in as one by its certificate (test/support/tls.ts). */
export const ROLES = {
  engine: "engine",
  gateway: "gateway",
  worker: (region: string) => `worker-${region}`,
} as const;

export const HUB_DOMAIN = "hub";
export const HUB_REGION = "us-east-1";

export interface LeafRegion {
  region: string;
  server: NatsServerHandle;
  /** Between this leaf and the hub's leafnode port. */
  link: TcpProxy;
}

export interface Topology {
  hub: NatsServerHandle;
  leaves: Record<string, LeafRegion>;
  /** region → domain, as the engine's FM_REGION_DOMAINS. */
  regionDomains: Record<string, string>;
  /** A connection as one of the config's roles (closed with the topology). */
  connectAs(server: NatsServerHandle, role: string): Promise<NatsConnection>;
  /** Resolves once the hub reaches the region's JetStream domain over its link. */
  waitForLink(region: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startTopology(regions: string[]): Promise<Topology> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const storeRoot = await mkdtemp(join(tmpdir(), "fm-topology-"));
    stops.push(() => rm(storeRoot, { recursive: true, force: true }));
    const hub = await startNatsServer({
      configFile: join(CONFIG_DIR, "hub.conf"),
      // Port 1 refuses: a leaf must reach the hub through its own proxy only, or cutting it would not cut it.
      vars: { HUB_CLIENT_PORT: -1, HUB_LEAF_PORT: -1, HUB_HTTP: "127.0.0.1:-1", HUB_LEAF_ADVERTISE: "127.0.0.1:1", HUB_STORE_DIR: join(storeRoot, "hub"), ...tlsVars("HUB", "hub") },
    });
    stops.push(() => hub.stop());
    const leafPort = leafnodePortOf(hub);
    const leaves: Record<string, LeafRegion> = {};
    await Promise.all(
      regions.map(async (region) => {
        const link = await startTcpProxy({ host: "127.0.0.1", port: leafPort });
        stops.push(() => link.close());
        const server = await startNatsServer({
          configFile: join(CONFIG_DIR, `leaf-${region}.conf`),
          vars: {
            LEAF_CLIENT_PORT: -1,
            LEAF_HTTP: "127.0.0.1:-1",
            LEAF_STORE_DIR: join(storeRoot, region),
            HUB_LEAF_URL: `nats-leaf://127.0.0.1:${link.port}`,
            ...tlsVars("LEAF", `leaf-${region}`),
          },
        });
        stops.push(() => server.stop());
        leaves[region] = { region, server, link };
      }),
    );
    const connections: NatsConnection[] = [];
    stops.push(async () => {
      await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    });
    const connectAs = async (server: NatsServerHandle, role: string) => {
      const nc = await connect({ servers: server.url, tls: testCerts().clientTls(role), noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      connections.push(nc);
      return nc;
    };
    const probe = await connectAs(hub, ROLES.engine);
    const waitForLink = async (region: string, timeoutMs = 10_000) => {
      await waitFor(
        async () => {
          const jsm = await jetstreamManager(probe, { domain: region, timeout: 1000 });
          return (await jsm.getAccountInfo()).domain === region;
        },
        { timeoutMs, message: `the hub to reach domain ${region}` },
      );
    };
    await Promise.all(regions.map((r) => waitForLink(r)));
    return {
      hub,
      leaves,
      regionDomains: { [HUB_REGION]: HUB_DOMAIN, ...Object.fromEntries(regions.map((r) => [r, r])) },
      connectAs,
      waitForLink,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * nats-server 2.9 does not list the leafnode listener in its ports file; it logs it
 * ("Listening for leafnode connections on 0.0.0.0:40497") before it reports ready.
 */
function leafnodePortOf(server: NatsServerHandle): number {
  const match = /Listening for leafnode connections on .*:(\d+)/.exec(server.logs());
  if (!match) throw new Error(`the hub logged no leafnode listener:\n${server.logs().slice(-2000)}`);
  return Number(match[1]);
}
