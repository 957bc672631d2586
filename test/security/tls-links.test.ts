/**
 * TLS on every NATS link of the shipped configs (nats-config/hub.conf, leaf-<region>.conf,
 * hub-cluster-{1,2,3}.conf), with certificates from scripts/certs: client ports, leaf links and
 * cluster routes are mutual TLS, and on client ports and leaf links the certificate is the login
 * (the role it names is the user; there are no passwords). Each link is tried with the right
 * certificate (allowed) and with each way of being wrong (refused): no TLS, no client
 * certificate, a certificate from another CA, not trusting the server's CA, a certificate of the
 * mesh's CA that names no role, a password instead of a certificate. The file prints what it
 * tried as a table.
 */
import { connect } from "@nats-io/transport-node";
import { mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { ROLES } from "../support/topology.js";
import { testCerts, tlsVars } from "../support/tls.js";
import { waitFor } from "../support/wait.js";

const CONFIG_DIR = resolve(import.meta.dirname, "../../nats-config");
const servers: NatsServerHandle[] = [];
const tried: Array<{ link: string; credentials: string; expected: "allowed" | "refused"; seen: "allowed" | "refused" }> = [];
const store = mkdtempSync(join(tmpdir(), "fm-tls-links-"));

/** Certificates from a second, unrelated CA: what an attacker (or a misconfigured peer) has. */
const rogue = (() => {
  const dir = join(store, "rogue-certs");
  execFileSync("bash", [resolve(import.meta.dirname, "../../scripts/certs"), "--days", "1", dir], { stdio: "ignore" });
  return {
    server: (name: string) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) }),
    ca: join(dir, "ca.pem"),
    /** The same role's certificate, from the other CA. */
    client: (role: string) => ({ caFile: testCerts().ca, certFile: join(dir, `${role}.pem`), keyFile: join(dir, `${role}-key.pem`) }),
  };
})();

/** A certificate the mesh's CA signed for a name that is no role (a stolen CA key would allow any name; a signed stranger does not). */
const stranger = (() => {
  execFileSync("bash", [resolve(import.meta.dirname, "../../scripts/certs"), "--days", "1", "--roles", "stranger", testCerts().dir, "hub"], { stdio: "ignore" });
  return testCerts().clientTls("stranger");
})();

afterAll(async () => {
  for (const s of servers.splice(0).reverse()) await s.stop().catch(() => undefined);
  rmSync(store, { recursive: true, force: true });
  console.log(
    `TLS links: ${tried.length} tries, ${tried.filter((t) => t.seen === t.expected).length} as expected\n` +
      tried.map((t) => `  ${t.link.padEnd(26)} ${t.credentials.padEnd(44)} ${t.expected.padEnd(8)} ${t.seen}`).join("\n"),
  );
});

async function start(config: string, vars: Record<string, string | number | string[]>): Promise<NatsServerHandle> {
  const server = await startNatsServer({ configFile: join(CONFIG_DIR, config), vars });
  servers.push(server);
  return server;
}

const hubVars = (name: string, tls: Record<string, string>) => ({
  HUB_CLIENT_PORT: -1,
  HUB_LEAF_PORT: -1,
  HUB_HTTP: "127.0.0.1:-1",
  HUB_LEAF_ADVERTISE: "127.0.0.1:1",
  HUB_STORE_DIR: join(store, name),
  ...tls,
});

const leafVars = (region: string, hubLeafPort: number, tls: Record<string, string>) => ({
  LEAF_CLIENT_PORT: -1,
  LEAF_HTTP: "127.0.0.1:-1",
  LEAF_STORE_DIR: join(store, `${region}-${hubLeafPort}`),
  HUB_LEAF_URL: `nats-leaf://127.0.0.1:${hubLeafPort}`,
  ...tls,
});

function leafPortOf(server: NatsServerHandle): number {
  const match = /Listening for leafnode connections on .*:(\d+)/.exec(server.logs());
  if (!match) throw new Error("the hub logged no leafnode listener");
  return Number(match[1]);
}

async function monitor<T>(server: NatsServerHandle, path: string): Promise<T> {
  return (await (await fetch(`${server.ports.monitoring![0]}${path}`)).json()) as T;
}

/** Connects and closes; answers whether the server let the client in. */
async function tryClient(link: string, server: NatsServerHandle, credentials: string, expected: "allowed" | "refused", options: Parameters<typeof connect>[0]) {
  let seen: "allowed" | "refused";
  try {
    const nc = await connect({ servers: server.url, timeout: 3000, reconnect: false, ...options });
    await nc.flush();
    await nc.close();
    seen = "allowed";
  } catch {
    seen = "refused";
  }
  tried.push({ link, credentials, expected, seen });
  expect(seen, `${link} with ${credentials}`).toBe(expected);
}

/**
 * Waits for a server to log why it refused a peer's certificate (a TLS leafnode or route
 * handshake failing certificate verification): the refusal is proven by the server saying so.
 */
async function waitForTlsRefusal(what: string, link: "leafnode" | "route", ...among: NatsServerHandle[]): Promise<void> {
  const refusal = new RegExp(`TLS ${link} handshake error: .*(x509|certificate)`);
  const found = await waitFor(() => among.map((s) => s.logs().split("\n").find((l) => refusal.test(l))).find(Boolean), {
    timeoutMs: 15_000,
    message: `${what}: a TLS ${link} refusal in the servers' logs`,
  });
  expect(found).toMatch(refusal);
}

describe("TLS on the client ports", () => {
  it("lets in a client by its role's certificate from the mesh's CA; refuses every other", async () => {
    const hub = await start("hub.conf", hubVars("hub", tlsVars("HUB", "hub")));
    const leaf = await start("leaf-eu-west-1.conf", leafVars("eu-west-1", leafPortOf(hub), tlsVars("LEAF", "leaf-eu-west-1")));
    for (const [link, server, role] of [
      ["hub client port", hub, ROLES.engine],
      ["leaf eu-west-1 client port", leaf, ROLES.worker("eu-west-1")],
    ] as const) {
      const good = testCerts().clientTls(role);
      await tryClient(link, server, `${role}'s certificate (mesh CA)`, "allowed", { tls: good });
      await tryClient(link, server, "plain TCP (no TLS)", "refused", { tls: null });
      await tryClient(link, server, "TLS without a client certificate", "refused", { tls: { caFile: good.caFile } });
      await tryClient(link, server, "user + old dev password, no certificate", "refused", { user: role, pass: `${role}-dev`, tls: { caFile: good.caFile } });
      await tryClient(link, server, `${role}'s certificate from another CA`, "refused", { tls: rogue.client(role) });
      await tryClient(link, server, "not trusting the server's CA", "refused", { tls: { ...good, caFile: rogue.ca } });
      await tryClient(link, server, "mesh CA certificate naming no role", "refused", { tls: stranger });
    }
  });
});

describe("TLS on the leaf links", () => {
  it("refuses a leaf whose certificate another CA signed (the hub verifies the leaf)", async () => {
    const hub = await start("hub.conf", hubVars("hub-2", tlsVars("HUB", "hub")));
    const leaf = await start("leaf-ap-south-1.conf", leafVars("ap-south-1", leafPortOf(hub), { LEAF_TLS_CA: testCerts().ca, ...rogueFiles("LEAF", "leaf-ap-south-1") }));
    await waitForTlsRefusal("the hub refusing the rogue leaf", "leafnode", hub);
    expect((await monitor<{ leafnodes: number }>(hub, "/leafz")).leafnodes).toBe(0);
    tried.push({ link: "leaf link to the hub", credentials: "leaf certificate from another CA", expected: "refused", seen: "refused" });
    await leaf.stop();
  });

  it("does not link to a hub whose certificate another CA signed (the leaf verifies the hub)", async () => {
    const hub = await start("hub.conf", hubVars("hub-3", { HUB_TLS_CA: testCerts().ca, ...rogueFiles("HUB", "hub") }));
    const leaf = await start("leaf-eu-west-1.conf", leafVars("eu-west-1", leafPortOf(hub), tlsVars("LEAF", "leaf-eu-west-1")));
    await waitForTlsRefusal("the leaf refusing the rogue hub", "leafnode", leaf);
    expect((await monitor<{ leafnodes: number }>(hub, "/leafz")).leafnodes).toBe(0);
    tried.push({ link: "leaf link to the hub", credentials: "hub certificate from another CA", expected: "refused", seen: "refused" });
    await leaf.stop();
  });

  it("refuses a leaf whose certificate (the mesh CA's) names no leaf user", async () => {
    const hub = await start("hub.conf", hubVars("hub-5", tlsVars("HUB", "hub")));
    // hub-1's certificate is genuine but names hub-1 / hub: no user of that name may link.
    await start("leaf-eu-west-1.conf", leafVars("eu-west-1", leafPortOf(hub), { ...tlsVars("LEAF", "leaf-eu-west-1"), LEAF_TLS_CERT: testCerts().server("hub-1").cert, LEAF_TLS_KEY: testCerts().server("hub-1").key }));
    const refusal = await waitFor(() => hub.logs().split("\n").find((l) => /lid:.*authentication error|Authorization Violation/i.test(l) && /\[ERR\]/.test(l)), {
      timeoutMs: 15_000,
      message: "the hub refusing a leaf that is no leaf user",
    });
    expect(refusal).toMatch(/authentication error|Authorization Violation/i);
    expect((await monitor<{ leafnodes: number }>(hub, "/leafz")).leafnodes).toBe(0);
    tried.push({ link: "leaf link to the hub", credentials: "mesh CA certificate naming no leaf", expected: "refused", seen: "refused" });
  });

  it("links a leaf and a hub that both show the mesh CA's certificates", async () => {
    const hub = await start("hub.conf", hubVars("hub-4", tlsVars("HUB", "hub")));
    await start("leaf-eu-west-1.conf", leafVars("eu-west-1", leafPortOf(hub), tlsVars("LEAF", "leaf-eu-west-1")));
    await waitFor(async () => (await monitor<{ leafnodes: number }>(hub, "/leafz")).leafnodes === 1, { message: "the leaf link up" });
    const link = (await monitor<{ leafs: Array<{ account?: string }> }>(hub, "/leafz")).leafs[0];
    expect(link?.account).toBe("MESH");
    tried.push({ link: "leaf link to the hub", credentials: "mesh CA certificates both ways", expected: "allowed", seen: "allowed" });
  });
});

describe("TLS on the cluster routes", () => {
  it("forms routes between nodes with the mesh CA's certificates and refuses a node with another CA's", async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const routes = ports.map((p) => `nats-route://127.0.0.1:${p}`);
    const node = (n: number, tls: Record<string, string>) =>
      start(`hub-cluster-${n}.conf`, { ...hubVars(`node-${n}`, tls), HUB_CLUSTER_PORT: ports[n - 1]!, HUB_ROUTES: routes });
    const [one, two] = await Promise.all([node(1, tlsVars("HUB", "hub-1")), node(2, tlsVars("HUB", "hub-2"))]);
    await waitFor(async () => (await monitor<{ num_routes: number }>(one, "/routez")).num_routes >= 1, { timeoutMs: 15_000, message: "the route between nodes 1 and 2" });
    tried.push({ link: "cluster route", credentials: "mesh CA certificates both ways", expected: "allowed", seen: "allowed" });
    const three = await node(3, { HUB_TLS_CA: testCerts().ca, ...rogueFiles("HUB", "hub-3") });
    await waitForTlsRefusal("the routes refusing node 3", "route", one, two);
    const routed = async (s: NatsServerHandle) => (await monitor<{ routes: Array<{ remote_name?: string }> }>(s, "/routez")).routes.map((r) => r.remote_name);
    expect([...(await routed(one)), ...(await routed(two))]).not.toContain("fm-hub-3");
    tried.push({ link: "cluster route", credentials: "node certificate from another CA", expected: "refused", seen: "refused" });
  });
});

function rogueFiles(prefix: "HUB" | "LEAF", name: string): Record<string, string> {
  const { cert, key } = rogue.server(name);
  return { [`${prefix}_TLS_CERT`]: cert, [`${prefix}_TLS_KEY`]: key };
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
