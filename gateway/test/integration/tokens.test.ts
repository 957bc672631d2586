/**
 * Bearer API tokens against a real mesh: with FM_API_TOKENS configured every /v1 route needs a
 * token, and a tenant's token never sees or acts on another tenant's executions — list, get,
 * cancel, resume, retry and start are each checked both ways.
 */
import { createLogger, type ExecutionView } from "@flowmonkey/shared";
import { createGateway, hashToken, type Gateway } from "@flowmonkey/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const log = createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" });
const TOKENS = {
  operator: "op-0123456789abcdef-operator",
  acme: "acme-0123456789abcdef-writer",
  acmeReader: "acme-0123456789abcdef-reader",
  globex: "globex-0123456789abcdef-writer",
};
let mesh: TestMesh;
let gateway: Gateway;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo", "wait", "fail"] }] });
  await mesh.putFlow({ id: "approval", steps: [{ id: "approve", handler: "wait", input: { resumeToken: "{% 'ok-' & execution.id %}" } }] });
  await mesh.putFlow({ id: "doomed", steps: [{ id: "call", handler: "fail", input: { code: "NOPE", retryable: false } }] });
  gateway = createGateway({
    nc: mesh.nc,
    log,
    prefix: mesh.prefix,
    port: 0,
    host: "127.0.0.1",
    apiTokens: {
      [hashToken(TOKENS.operator)]: { scopes: ["admin"], name: "ops" },
      [hashToken(TOKENS.acme)]: { tenantId: "acme", scopes: ["write"] },
      [hashToken(TOKENS.acmeReader)]: { tenantId: "acme", scopes: ["read"] },
      [hashToken(TOKENS.globex)]: { tenantId: "globex", scopes: ["write"] },
    },
  });
  await gateway.start();
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- asserted field by field
async function call(token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; type: string; body: any }> {
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) };
  const res = await fetch(`${gateway.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: text ? JSON.parse(text) : undefined };
}

const start = async (token: string, body: Record<string, unknown> = {}) => {
  const reply = await call(token, "POST", "/v1/flows/approval/executions", { input: {}, ...body });
  expect(reply.status).toBe(202);
  return reply.body.executionId as string;
};

describe("without a valid token", () => {
  it("every /v1 route is 401 problem+json; probes and the document stay open", async () => {
    for (const [method, path] of [["GET", "/v1/executions"], ["POST", "/v1/flows/approval/executions"], ["GET", "/v1/queues"], ["GET", "/v1/nothing"]] as const) {
      const reply = await call(undefined, method, path);
      expect(reply.status, `${method} ${path}`).toBe(401);
      expect(reply.type).toBe("application/problem+json");
      expect(reply.body).toMatchObject({ code: "UNAUTHORIZED", status: 401 });
    }
    expect((await call("not-a-known-token-at-all", "GET", "/v1/executions")).body).toMatchObject({ code: "UNAUTHORIZED" });
    expect((await fetch(`${gateway.url}/v1/executions`)).headers.get("www-authenticate")).toContain("Bearer");
    expect((await call(undefined, "GET", "/healthz")).status).toBe(200);
    const doc = await call(undefined, "GET", "/openapi.json");
    expect(doc.body.paths["/v1/executions"].get.security).toEqual([{ bearer: [] }]);
  });
});

describe("a tenant's token", () => {
  let acmeRun: string;
  let globexRun: string;

  beforeAll(async () => {
    acmeRun = await start(TOKENS.acme);
    globexRun = await start(TOKENS.globex);
    await mesh.waitForStatus(acmeRun, "waiting");
    await mesh.waitForStatus(globexRun, "waiting");
  });

  it("starts executions of its own tenant only", async () => {
    expect((await mesh.api.get(acmeRun)).tenantId).toBe("acme");
    expect((await mesh.api.get(globexRun)).tenantId).toBe("globex");
    const other = await call(TOKENS.acme, "POST", "/v1/flows/approval/executions", { input: {}, tenantId: "globex" });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ code: "FORBIDDEN" });
    expect((await call(TOKENS.acmeReader, "POST", "/v1/flows/approval/executions", { input: {} })).body).toMatchObject({ code: "FORBIDDEN" });
  });

  it("lists and gets its own tenant's executions only", async () => {
    const ids = async (token: string) => ((await call(token, "GET", "/v1/executions")).body.executions as ExecutionView[]).map((e) => e.id);
    expect(await ids(TOKENS.acme)).toEqual([acmeRun]);
    expect(await ids(TOKENS.acmeReader)).toEqual([acmeRun]);
    expect(await ids(TOKENS.globex)).toEqual([globexRun]);
    expect((await ids(TOKENS.operator)).sort()).toEqual([acmeRun, globexRun].sort());
    expect((await call(TOKENS.acme, "GET", "/v1/executions?tenantId=globex")).status).toBe(403);

    expect((await call(TOKENS.acme, "GET", `/v1/executions/${acmeRun}`)).status).toBe(200);
    const hidden = await call(TOKENS.acme, "GET", `/v1/executions/${globexRun}`);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toMatchObject({ code: "EXECUTION_NOT_FOUND" });
    expect((await call(TOKENS.acme, "GET", `/v1/executions/${globexRun}/events`)).status).toBe(404);
  });

  it("cannot resume another tenant's waiting step, by body or by path", async () => {
    const byBody = await call(TOKENS.acme, "POST", "/v1/resume", { resumeToken: `ok-${globexRun}`, payload: { by: "acme" } });
    expect(byBody.status).toBe(404);
    expect(byBody.body).toMatchObject({ code: "RESUME_TOKEN_NOT_FOUND" });
    expect((await call(TOKENS.acme, "POST", `/v1/resume/ok-${globexRun}`, { by: "acme" })).status).toBe(404);
    expect((await mesh.api.get(globexRun)).status).toBe("waiting");

    const own = await call(TOKENS.globex, "POST", `/v1/resume/ok-${globexRun}`, { by: "globex" });
    expect(own.status).toBe(200);
    expect((await mesh.waitForStatus(globexRun, "completed")).output).toEqual({ by: "globex" });
  });

  it("cannot cancel another tenant's execution", async () => {
    const foreign = await call(TOKENS.globex, "POST", `/v1/executions/${acmeRun}/cancel`);
    expect(foreign.status).toBe(404);
    expect((await mesh.api.get(acmeRun)).status).toBe("waiting");
    expect((await call(TOKENS.acmeReader, "POST", `/v1/executions/${acmeRun}/cancel`)).status).toBe(403);
    const own = await call(TOKENS.acme, "POST", `/v1/executions/${acmeRun}/cancel`);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ executionId: acmeRun, status: "cancelled" });
  });

  it("cannot retry another tenant's failed step", async () => {
    const doomed = await call(TOKENS.globex, "POST", "/v1/flows/doomed/executions", { input: {} });
    await mesh.waitForStatus(doomed.body.executionId, "failed");
    expect((await call(TOKENS.acme, "POST", `/v1/executions/${doomed.body.executionId}/steps/call/retry`)).status).toBe(404);
    expect((await call(TOKENS.globex, "POST", `/v1/executions/${doomed.body.executionId}/steps/call/retry`)).body).toMatchObject({ attempt: 2 });
  });

  it("cannot see or change the mesh itself; an operator's token can", async () => {
    for (const [method, path] of [["GET", "/v1/queues"], ["GET", "/v1/workers"], ["GET", "/v1/dlq"], ["GET", "/v1/events"], ["POST", "/v1/flows"]] as const) {
      const reply = await call(TOKENS.acme, method, path, method === "POST" ? {} : undefined);
      expect(reply.status, `${method} ${path}`).toBe(403);
      expect(reply.body).toMatchObject({ code: "FORBIDDEN" });
    }
    expect((await call(TOKENS.operator, "GET", "/v1/queues")).status).toBe(200);
  });

  it("takes ?access_token= on the event streams only (EventSource cannot send a header), with the same tenant rules", async () => {
    const own = await start(TOKENS.acme);
    const globexRun = await start(TOKENS.globex);
    const stream = async (path: string) => {
      const controller = new AbortController();
      const res = await fetch(`${gateway.url}${path}`, { signal: controller.signal });
      controller.abort();
      return res.status;
    };
    expect(await stream(`/v1/executions/${own}/events?access_token=${TOKENS.acme}`)).toBe(200);
    expect(await stream(`/v1/events?access_token=${TOKENS.operator}`)).toBe(200);
    expect(await stream(`/v1/flows/approval/events?access_token=${TOKENS.operator}`)).toBe(200);
    // The query token is the same grant: another tenant's stream is still a 404, a mesh-wide one a 403.
    expect(await stream(`/v1/executions/${globexRun}/events?access_token=${TOKENS.acme}`)).toBe(404);
    expect(await stream(`/v1/events?access_token=${TOKENS.acme}`)).toBe(403);
    expect(await stream(`/v1/events?access_token=not-a-known-token-at-all`)).toBe(401);
    // Anywhere else a token in the URL counts for nothing.
    expect((await call(undefined, "GET", `/v1/executions/${own}?access_token=${TOKENS.acme}`)).status).toBe(401);
    expect((await call(undefined, "GET", `/v1/executions?access_token=${TOKENS.operator}`)).status).toBe(401);
  });
});
