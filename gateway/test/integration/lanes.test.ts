/**
 * Lanes through the gateway: GET /v1/lanes and the built `flowmonkey lanes` CLI against a real
 * mesh (nats-server from PATH, PostgreSQL, engine and one worker in this process) whose lanes
 * are made unhealthy on purpose: a tenant over its cap on a handler no worker serves (`delay`),
 * and a circuit opened by UNAVAILABLE failures of the `fail` handler.
 */
import type { LanesReply } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { waitFor } from "../../../test/support/wait.js";
import { useGatewayMesh } from "./gateway-mesh.js";

const COOL_DOWN_MS = 60_000;
const nats = useNatsServer();
const pg = useTestDatabase();
const fixture = useGatewayMesh(
  () => ({
    natsUrl: nats.url,
    databaseUrl: pg.url,
    // No worker serves `delay`: its tasks stay in flight.
    workers: [{ handlers: ["echo", "fail"] }],
    engine: { tenantMaxInFlight: 2, circuit: { minResults: 2, failureRatio: 0.5, coolDownMs: COOL_DOWN_MS } },
  }),
  {
    setup: async (mesh) => {
      await mesh.putFlow({ id: "stuck", steps: [{ id: "nap", handler: "delay", input: { ms: 10 } }] });
      await mesh.putFlow({ id: "down", steps: [{ id: "call", handler: "fail", input: { code: "UNAVAILABLE", retryable: true } }] });
    },
  },
);
const cli = fixture.cli;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- asserted field by field below
async function getLanes(path = "/v1/lanes"): Promise<{ status: number; type: string; body: any }> {
  const res = await fetch(`${fixture.gateway.url}${path}`);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.json() };
}

describe("lanes", () => {
  it("are all healthy on a fresh mesh", async () => {
    const reply = await getLanes();
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ circuits: [], tenants: [] });

    const json = await cli("lanes", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ circuits: [], tenants: [] });
    const human = await cli("lanes");
    expect(human.code).toBe(0);
    expect(human.stdout.trim()).toBe("all lanes healthy");
  });

  it("show a tenant held at its cap and an open circuit, over HTTP and in the CLI", async () => {
    // Tenant acme: cap 2 on us-east-1/delay, so of three executions two are in flight and one waits.
    for (let i = 0; i < 3; i++) await fixture.mesh.api.start("stuck", { input: {}, tenantId: "acme" });
    const tenants = [{ tenantId: "acme", lane: "us-east-1/delay", inFlight: 2, queued: 1, maxInFlight: 2 }];
    await waitFor(async () => JSON.stringify((await fixture.mesh.api.lanes()).tenants) === JSON.stringify(tenants), {
      message: "acme's executions counted on its lane",
    });

    // Two UNAVAILABLE results out of two open us-east-1/fail (minResults 2, ratio 0.5).
    const failing = [];
    for (let i = 0; i < 2; i++) failing.push((await fixture.mesh.api.start("down", { input: {} })).executionId);
    for (const id of failing) expect((await fixture.mesh.waitForStatus(id, "failed")).error?.code).toBe("UNAVAILABLE");
    const circuit = { lane: "us-east-1/fail", state: "open", openedAt: expect.any(String), openUntil: expect.any(String) };

    const reply = await getLanes();
    expect(reply.status).toBe(200);
    expect(reply.type).toContain("application/json");
    expect(reply.body.circuits).toEqual([expect.objectContaining(circuit)]);
    expect(reply.body.tenants).toEqual(tenants);
    const body = reply.body as LanesReply;
    const { openedAt, openUntil } = body.circuits[0]!;
    expect(Date.parse(openUntil!) - Date.parse(openedAt!)).toBe(COOL_DOWN_MS);

    const json = await cli("lanes", "--json");
    expect(json.code).toBe(0);
    const printed = JSON.parse(json.stdout) as LanesReply;
    expect(printed.circuits).toEqual([expect.objectContaining(circuit)]);
    expect(printed.tenants).toEqual(tenants);

    const human = await cli("lanes");
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^circuits/);
    expect(lines[1]).toMatch(/^LANE\s+STATE\s+FAILURES\s+OPEN UNTIL$/);
    expect(lines[2]).toMatch(new RegExp(`^us-east-1/fail\\s+open\\s+\\d+/\\d+\\s+${openUntil!.replace(/\./g, "\\.")} \\(in \\d`));
    expect(lines[3]).toBe("");
    expect(lines[4]).toMatch(/^tenants/);
    expect(lines[5]).toMatch(/^TENANT\s+LANE\s+IN FLIGHT\s+QUEUED\s+CAP$/);
    expect(lines[6]).toMatch(/^acme\s+us-east-1\/delay\s+2\s+1\s+2$/);
    expect(lines).toHaveLength(7);
  });

  it("refuses query parameters with 400 problem+json, and extra CLI arguments as usage errors", async () => {
    const reply = await getLanes("/v1/lanes?region=us-east-1");
    expect(reply.status).toBe(400);
    expect(reply.type).toBe("application/problem+json");
    expect(reply.body).toMatchObject({ status: 400, code: "INVALID_INPUT" });
    expect(reply.body.detail).toContain("region");

    expect((await cli("lanes", "us-east-1")).code).toBe(2);
    expect((await cli("lanes", "--region", "us-east-1")).code).toBe(2);
  });

  it("is in the help text", async () => {
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("flowmonkey lanes [--json]");
    const own = await cli("lanes", "--help");
    expect(own.code).toBe(0);
    expect(own.stdout).toContain("usage: flowmonkey lanes [--json]");
  });
});
