/**
 * Resuming waits and reading usage through the gateway and the built CLI, against a real mesh
 * (nats-server from PATH, PostgreSQL, engine and a worker in this process): POST
 * /v1/resume/:token with a payload, `flowmonkey resume`, GET /v1/usage and `flowmonkey usage`
 * per tenant.
 */
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { useGatewayMesh } from "./gateway-mesh.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const fixture = useGatewayMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["wait", "echo"] }] }), {
  setup: async (mesh) => {
    await fixture.mesh.putFlow({
      id: "approval",
      steps: [
        { id: "approve", handler: "wait", input: { resumeToken: "{% 'ok-' & execution.id %}" } },
        { id: "after", handler: "echo", input: "{% steps.approve %}" },
      ],
    });
  },
});
const cli = fixture.cli;

describe("resume", () => {
  it("POST /v1/resume/:token resumes the step with the body as its payload; a second time is a 404", async () => {
    const { executionId } = await fixture.mesh.api.start("approval", { executionId: "http-1", tenantId: "acme", input: {} });
    await fixture.mesh.waitForStatus(executionId, "waiting");
    const res = await fetch(`${fixture.gateway.url}/v1/resume/ok-http-1`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ by: "http" }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ executionId, stepId: "approve" });
    expect((await fixture.mesh.waitForStatus(executionId, "completed")).output).toEqual({ by: "http" });

    const again = await fetch(`${fixture.gateway.url}/v1/resume/ok-http-1`, { method: "POST" });
    expect(again.status).toBe(404);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(await again.json()).toMatchObject({ code: "RESUME_TOKEN_NOT_FOUND" });
  });

  it("flowmonkey resume takes a JSON payload and says what it resumed", async () => {
    const { executionId } = await fixture.mesh.api.start("approval", { executionId: "cli-1", tenantId: "globex", input: {} });
    await fixture.mesh.waitForStatus(executionId, "waiting");
    const bad = await cli("resume", "ok-cli-1", "--payload", "{nope");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("INVALID_JSON");
    const run = await cli("resume", "ok-cli-1", "--payload", '{"by":"cli"}');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("resumed step approve of cli-1");
    expect((await fixture.mesh.waitForStatus(executionId, "completed")).output).toEqual({ by: "cli" });
  });
});

describe("usage", () => {
  it("is reported per tenant: executions, tasks, active and paused time by tier", async () => {
    const res = await fetch(`${fixture.gateway.url}/v1/usage?tenantId=acme`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { tenants: Array<{ tenantId?: string; executions: number; tasks: number; pausedMs: number; byTier: Record<string, unknown> }> };
    expect(body.tenants).toHaveLength(1);
    const acme = body.tenants[0]!;
    // approve waited (1), approve resumed (2), after (3): one execution.
    expect(acme).toMatchObject({ tenantId: "acme", executions: 1, tasks: 3 });
    expect(acme.pausedMs).toBeGreaterThan(0);
    expect(Object.keys(acme.byTier).length).toBeGreaterThan(0);

    const bad = await fetch(`${fixture.gateway.url}/v1/usage?from=yesterday`);
    expect(bad.status).toBe(400);

    const json = await cli("usage", "--json");
    expect(json.code).toBe(0);
    const all = JSON.parse(json.stdout) as { tenants: Array<{ tenantId?: string }> };
    expect(all.tenants.map((t) => t.tenantId).sort()).toEqual(["acme", "globex"]);
    const human = await cli("usage", "--tenant", "globex");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/globex\s+total\s+1\s+3/);
  });
});
