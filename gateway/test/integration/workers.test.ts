/**
 * Workers' capabilities (`--capabilities`, regions issue) in the registry views: GET /v1/workers
 * and the built `flowmonkey workers` CLI show them for each live worker (KV fm_workers).
 */
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { useGatewayMesh } from "./gateway-mesh.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const fixture = useGatewayMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] }), {
  setup: async (mesh) => {
    await mesh.startWorker({ region: "eu-west-1", handlers: ["echo", "delay"], concurrency: 4, worker: { capabilities: ["gpu"] } });
  },
});
const cli = fixture.cli;

describe("worker registry", () => {
  it("GET /v1/workers lists live workers with region, handlers and capabilities", async () => {
    const res = await fetch(`${fixture.gateway.url}/v1/workers`);
    expect(res.status).toBe(200);
    const { workers } = (await res.json()) as { workers: Array<{ region: string; handlers: string[]; capabilities: string[]; concurrency: number }> };
    expect(workers.map((w) => [w.region, w.handlers, w.capabilities, w.concurrency])).toEqual([
      ["eu-west-1", ["echo", "delay"], ["gpu"], 4],
      ["us-east-1", ["echo"], [], 16],
    ]);
    const eu = (await (await fetch(`${fixture.gateway.url}/v1/workers?region=eu-west-1`)).json()) as { workers: unknown[] };
    expect(eu.workers).toHaveLength(1);
  });

  it("flowmonkey workers prints them, as a table or JSON", async () => {
    const human = await cli("workers");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/WORKER\s+REGION\s+HANDLERS\s+CAPABILITIES\s+IN FLIGHT/);
    expect(human.stdout).toMatch(/eu-west-1\s+echo,delay\s+gpu\s+0\/4/);
    expect(human.stdout).toMatch(/us-east-1\s+echo\s+-\s+0\/16/);
    const json = await cli("workers", "--region", "us-east-1", "--json");
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { workers: Array<{ region: string }> }).workers.map((w) => w.region)).toEqual(["us-east-1"]);
  });
});
