import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { isNatsReachable, startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { testCerts, tlsVars } from "../support/tls.js";
import { collect, nextMessage, waitFor, waitForReconnect, WaitTimeoutError } from "../support/wait.js";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("startNatsServer", () => {
  const servers: NatsServerHandle[] = [];
  const connections: NatsConnection[] = [];
  afterEach(async () => {
    await Promise.all(connections.splice(0).map((nc) => nc.close()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it("runs JetStream on a free loopback port, keeps streams across restart, and frees the port on stop", async () => {
    const server = await startNatsServer();
    servers.push(server);
    expect(server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.storeDir).toBeDefined();
    expect(server.running).toBe(true);

    const nc = await connect({ servers: server.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    connections.push(nc);
    const jsm = await jetstreamManager(nc);
    const prefix = uniquePrefix();
    const stream = `${prefix.toUpperCase()}_LAUNCHER`;
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
    const ack = await jetstream(nc).publish(`${prefix}.a`, "hello");
    expect(ack.seq).toBe(1);

    const firstPid = server.pid;
    const reconnected = waitForReconnect(nc);
    await server.restart();
    await reconnected;
    expect(server.pid).not.toBe(firstPid);
    expect(isAlive(firstPid)).toBe(false);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);

    // The same client reconnects to the restarted server and finds the stream and its message.
    const info = await waitFor(async () => (await jsm.streams.info(stream)).state, { message: `stream ${stream} after restart` });
    expect(info.messages).toBe(1);
    const stored = await jsm.streams.getMessage(stream, { seq: 1 });
    expect(stored?.string()).toBe("hello");

    const { url, pid, storeDir } = server;
    await server.stop();
    expect(server.running).toBe(false);
    expect(isAlive(pid)).toBe(false);
    expect(await isNatsReachable(url, 500)).toBe(false);
    expect(existsSync(storeDir as string)).toBe(false);
    expect(server.logs()).toContain("Server is ready");
  });

  it("survives SIGKILL: restart() brings it back on the same port with the same store", async () => {
    const server = await startNatsServer();
    servers.push(server);
    const nc = await connect({ servers: server.url });
    connections.push(nc);
    const prefix = uniquePrefix();
    const stream = `${prefix.toUpperCase()}_KILL`;
    await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${prefix}.>`] });
    await jetstream(nc).publish(`${prefix}.x`, "one");
    await nc.close();
    connections.splice(0);

    server.kill("SIGKILL");
    const exit = await server.waitForExit();
    expect(exit.signal).toBe("SIGKILL");
    expect(await isNatsReachable(server.url, 500)).toBe(false);

    await server.restart();
    const nc2 = await connect({ servers: server.url });
    connections.push(nc2);
    const info = await (await jetstreamManager(nc2)).streams.info(stream);
    expect(info.state.messages).toBe(1);
  });

  it("starts nats-config/dev.conf with the port and store dir overridden by flags", async () => {
    const storeDir = await mkdtemp(join(tmpdir(), "fm-devconf-"));
    try {
      const server = await startNatsServer({
        configFile: fileURLToPath(new URL("../../nats-config/dev.conf", import.meta.url)),
        port: -1,
        httpPort: -1,
        storeDir,
      });
      servers.push(server);
      expect(server.port).not.toBe(4222);
      expect(server.storeDir).toBe(storeDir);
      expect(server.ports.monitoring?.[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const nc = await connect({ servers: server.url });
      connections.push(nc);
      expect(nc.info?.max_payload).toBe(8 * 1024 * 1024);
      const prefix = uniquePrefix();
      await (await jetstreamManager(nc)).streams.add({ name: `${prefix.toUpperCase()}_DEV`, subjects: [`${prefix}.>`] });
      expect(existsSync(join(storeDir, "jetstream"))).toBe(true);
      await server.stop();
      // A store dir the caller passed in is the caller's to remove.
      expect(existsSync(storeDir)).toBe(true);
    } finally {
      await rm(storeDir, { recursive: true, force: true });
    }
  });

  it("starts a config with its variables replaced (vars) and its includes still found; refuses an unknown variable", async () => {
    const storeDir = await mkdtemp(join(tmpdir(), "fm-vars-"));
    const hubConf = fileURLToPath(new URL("../../nats-config/hub.conf", import.meta.url));
    try {
      const server = await startNatsServer({
        configFile: hubConf,
        vars: { HUB_CLIENT_PORT: -1, HUB_LEAF_PORT: -1, HUB_HTTP: "127.0.0.1:-1", HUB_STORE_DIR: storeDir, ...tlsVars("HUB", "hub") },
      });
      servers.push(server);
      expect(server.port).not.toBe(4222);
      // The users (roles, by certificate) come from hub-accounts.inc, included by the copy from the original's directory.
      const nc = await connect({ servers: server.url, tls: testCerts().clientTls("engine") });
      connections.push(nc);
      expect((await (await jetstreamManager(nc)).getAccountInfo()).domain).toBe("hub");
      expect(existsSync(join(storeDir, "jetstream"))).toBe(true);
      // Monitoring names users and connections without authentication: the shipped hub serves it on loopback only.
      expect(server.ports.monitoring?.length).toBeGreaterThan(0);
      for (const url of server.ports.monitoring ?? []) expect(new URL(url).hostname).toBe("127.0.0.1");
      const varz = (await (await fetch(`${server.ports.monitoring![0]}/varz`)).json()) as { http_host: string };
      expect(varz.http_host).toBe("127.0.0.1");
      await expect(startNatsServer({ configFile: hubConf, vars: { HUB_NO_SUCH_PORT: 1 } })).rejects.toThrow(/defines no variable HUB_NO_SUCH_PORT/);
    } finally {
      await Promise.all(servers.splice(0).map((s) => s.stop()));
      await rm(storeDir, { recursive: true, force: true });
    }
  });

  it("says how to install nats-server when it is not on PATH", async () => {
    const attempt = startNatsServer({ bin: "nats-server", env: { PATH: "/nonexistent-fm-path" } });
    await expect(attempt).rejects.toThrow(/not found on PATH.*apt-get install nats-server.*github\.com\/nats-io\/nats-server\/releases/s);
  });
});

describe("useNatsServer and the wait helpers", () => {
  const nats = useNatsServer();

  it("gives each file a server and each test a unique prefix", async () => {
    expect(await isNatsReachable(nats.url, 1000)).toBe(true);
    expect(nats.server.url).toBe(nats.url);
    const a = uniquePrefix();
    expect(a).toMatch(/^t[a-z0-9]{8}$/);
    expect(uniquePrefix()).not.toBe(a);
  });

  it("nextMessage times out without losing the message that arrives later; collect gathers n", async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const subject = `${uniquePrefix()}.events`;
      const sub = nc.subscribe(subject);
      await nc.flush();

      const started = Date.now();
      await expect(nextMessage(sub, { timeoutMs: 100 })).rejects.toBeInstanceOf(WaitTimeoutError);
      expect(Date.now() - started).toBeLessThan(2000);

      for (const n of [1, 2, 3]) nc.publish(subject, String(n));
      const first = await nextMessage(sub, { timeoutMs: 2000 });
      expect(first.string()).toBe("1");
      const rest = await collect(sub, 2, { timeoutMs: 2000 });
      expect(rest.map((m) => m.string())).toEqual(["2", "3"]);
      await expect(collect(sub, 1, { timeoutMs: 50 })).rejects.toThrow(/collected 0 of 1/);
    } finally {
      await nc.close();
    }
  });

  it("waitFor returns the first truthy value and times out with the last value as cause", async () => {
    let calls = 0;
    expect(await waitFor(() => (++calls >= 3 ? calls : undefined), { intervalMs: 1 })).toBe(3);

    const failure = await waitFor(() => false, { timeoutMs: 50, message: "status" }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WaitTimeoutError);
    expect((failure as Error).message).toMatch(/waiting for status; last value: false/);
    expect((failure as Error).cause).toBe(false);

    const thrown = new Error("not yet");
    const failure2 = await waitFor(
      () => {
        throw thrown;
      },
      { timeoutMs: 50 },
    ).catch((e: unknown) => e);
    expect((failure2 as Error).cause).toBe(thrown);
  });
});
