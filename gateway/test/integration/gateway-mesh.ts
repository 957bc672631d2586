/**
 * The fixture most gateway tests share: a real mesh (nats-server from PATH, PostgreSQL, engine
 * and workers in this process, a unique prefix) with a gateway on a free loopback port in front
 * of it, started before the file's tests and closed after them, plus the built CLI pointed at it.
 */
import { createLogger } from "@flowmonkey/shared";
import { createGateway, type Gateway, type GatewayOptions } from "@flowmonkey/gateway";
import { afterAll, beforeAll } from "vitest";
import { startMesh, type MeshOptions, type TestMesh } from "../../../test/support/mesh.js";
import { runCli, type CliRun } from "./run-cli.js";

export interface GatewayMesh {
  readonly mesh: TestMesh;
  readonly gateway: Gateway;
  /** The built `flowmonkey` CLI against this mesh. */
  cli(...args: string[]): Promise<CliRun>;
}

export function useGatewayMesh(
  options: () => MeshOptions,
  extra: { setup?: (mesh: TestMesh) => Promise<void>; gateway?: Partial<Omit<GatewayOptions, "nc" | "prefix">> } = {},
): GatewayMesh {
  let mesh: TestMesh | undefined;
  let gateway: Gateway | undefined;
  let natsUrl = "";
  beforeAll(async () => {
    const o = options();
    natsUrl = o.natsUrl;
    mesh = await startMesh(o);
    await extra.setup?.(mesh);
    gateway = createGateway({
      nc: mesh.nc,
      log: createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" }),
      prefix: mesh.prefix,
      port: 0,
      host: "127.0.0.1",
      maxMessageBytes: 64 * 1024,
      ...extra.gateway,
    });
    await gateway.start();
  });
  afterAll(async () => {
    await gateway?.close();
    await mesh?.close();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (!value) throw new Error(`${what} is not started (use it inside tests and hooks)`);
    return value;
  };
  return {
    get mesh() {
      return started(mesh, "the mesh");
    },
    get gateway() {
      return started(gateway, "the gateway");
    },
    cli: (...args) => runCli({ natsUrl, prefix: started(mesh, "the mesh").prefix }, ...args),
  };
}
