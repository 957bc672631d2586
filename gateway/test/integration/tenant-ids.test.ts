/**
 * What a tenant's token learns from starting an execution with an id of its choosing (issue 18,
 * item 7). It used to tell another tenant's execution ids apart: 409 "already used" or 202
 * `created:false` with the id for one of them, 202 `created:true` for a free id. Now an id taken
 * by another tenant is refused exactly as an id taken within the tenant is; only the tenant's
 * own repeat of its own start answers `created:false`.
 */
import { createLogger } from "@flowmonkey/shared";
import { createGateway, hashToken, type Gateway } from "@flowmonkey/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const TOKENS = { acme: "acme-0123456789abcdef-writer", beta: "beta-0123456789abcdef-writer" };
let mesh: TestMesh;
let gateway: Gateway;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] });
  await mesh.putFlow({ id: "ctl", steps: [{ id: "only", handler: "echo", input: "{% input %}" }] });
  gateway = createGateway({
    nc: mesh.nc,
    log: createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" }),
    prefix: mesh.prefix,
    port: 0,
    host: "127.0.0.1",
    apiTokens: {
      [hashToken(TOKENS.acme)]: { tenantId: "acme", scopes: ["write"] },
      [hashToken(TOKENS.beta)]: { tenantId: "beta", scopes: ["write"] },
    },
  });
  await gateway.start();
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- asserted field by field
async function startAs(token: string, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gateway.url}/v1/flows/ctl/executions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ input: {}, ...body }),
  });
  return { status: res.status, body: JSON.parse(await res.text()) };
}

/** A refusal with the id taken out: what must not differ between "taken by another tenant" and "taken in mine". */
const shapeOf = (reply: { status: number; body: Record<string, unknown> }, id: string) =>
  JSON.parse(JSON.stringify({ status: reply.status, ...reply.body }).replaceAll(id, "<id>")) as unknown;

describe("a tenant starting with an execution id of its choosing", () => {
  it("cannot tell another tenant's ids from ids taken in its own tenant", async () => {
    // beta's executions: one with an id beta chose, one with an id the engine chose.
    const chosen = await startAs(TOKENS.beta, { executionId: "beta-chosen-1" });
    expect(chosen).toMatchObject({ status: 202, body: { executionId: "beta-chosen-1", created: true } });
    const generated = (await startAs(TOKENS.beta, {})).body.executionId as string;
    // acme's own: an id taken in acme by another start (engine-chosen, so another start key).
    const acmeGenerated = (await startAs(TOKENS.acme, {})).body.executionId as string;

    const byAcme = {
      betaChosen: await startAs(TOKENS.acme, { executionId: "beta-chosen-1" }),
      betaGenerated: await startAs(TOKENS.acme, { executionId: generated }),
      ownGenerated: await startAs(TOKENS.acme, { executionId: acmeGenerated }),
    };
    expect(byAcme.ownGenerated).toMatchObject({ status: 409, body: { code: "INVALID_STATE", detail: expect.stringContaining("it is taken") } });
    expect(shapeOf(byAcme.betaChosen, "beta-chosen-1")).toEqual(shapeOf(byAcme.ownGenerated, acmeGenerated));
    expect(shapeOf(byAcme.betaGenerated, generated)).toEqual(shapeOf(byAcme.ownGenerated, acmeGenerated));
    // Nothing of beta's leaks, and beta's executions are untouched.
    for (const reply of Object.values(byAcme)) expect(reply.body.created).toBeUndefined();
    expect((await mesh.api.get("beta-chosen-1")).tenantId).toBe("beta");
  });

  it("gets created:false only for a repeat of its own start; a free id is created", async () => {
    const first = await startAs(TOKENS.acme, { executionId: "acme-own-1" });
    expect(first).toMatchObject({ status: 202, body: { executionId: "acme-own-1", created: true } });
    expect(await startAs(TOKENS.acme, { executionId: "acme-own-1" })).toMatchObject({ status: 202, body: { executionId: "acme-own-1", created: false } });
    // The same id from beta is refused like any taken id (and beta learns nothing else).
    const fromBeta = await startAs(TOKENS.beta, { executionId: "acme-own-1" });
    expect(fromBeta).toMatchObject({ status: 409, body: { code: "INVALID_STATE" } });
    expect(fromBeta.body.executionId).toBeUndefined();
  });

  it("records each refusal, like every refused start", async () => {
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections WHERE code = 'INVALID_STATE' AND reason LIKE '%it is taken%'");
    expect(rows[0]!.n).toBeGreaterThanOrEqual(4);
  });
});

describe("two tenants in one intake batch with the same id", () => {
  it("creates one execution and refuses the other start", async () => {
    const replies = await Promise.all([startAs(TOKENS.acme, { executionId: "same-batch-1" }), startAs(TOKENS.beta, { executionId: "same-batch-1" })]);
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 409]);
    const winner = replies.find((r) => r.status === 202)!;
    expect(winner.body).toEqual({ executionId: "same-batch-1", created: true });
    const view = await mesh.api.get("same-batch-1");
    expect(view.tenantId).toBe(replies[0]!.status === 202 ? "acme" : "beta");
  });
});
