/**
 * /openapi.json against the app itself: every route the app serves is in the document, the
 * document names no route the app does not serve, and request schemas are the ones the routes
 * validate with (a query or body the document allows is accepted, one it forbids is refused).
 */
import { createLogger, createSubjects, type ApiClient } from "@flowmonkey/shared";
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app.js";
import { openApiPath } from "../../src/http/openapi/document.js";

// Requests in this file never reach NATS or the engine: only validation and the document are exercised.
const neverCalled = new Proxy({}, { get: () => () => Promise.reject(new Error("not in this test")) });
const { app } = createApp(
  { nc: {} as NatsConnection, api: neverCalled as ApiClient, healthApi: neverCalled as ApiClient, log: createLogger({ name: "t", level: "silent" }), maxMessageBytes: 4096 },
  createSubjects("fm"),
);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document, read field by field
async function document(): Promise<any> {
  const res = await app.request("/openapi.json");
  expect(res.status).toBe(200);
  return res.json();
}

/** The app's routes as `METHOD /openapi/{path}`, without middleware registered on every path. */
function servedRoutes(): string[] {
  const served = app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${openApiPath(r.path)}`);
  return [...new Set(served)].sort();
}

describe("/openapi.json", () => {
  it("is an OpenAPI 3.1 document with problem+json errors and bearer security", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.schemas.Problem.properties.code.enum).toContain("UNAUTHORIZED");
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("lists every route the app serves, and nothing else", async () => {
    const doc = await document();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const served = servedRoutes();
    expect(served.length).toBeGreaterThan(25);
    expect(documented).toEqual(served);
  });

  it("describes the schemas the routes validate with", async () => {
    const doc = await document();
    const list = doc.paths["/v1/executions"].get;
    expect(list.parameters.map((p: { name: string }) => p.name).sort()).toEqual(["cursor", "flowId", "limit", "status", "tenantId"]);
    const statusEnum = list.parameters.find((p: { name: string }) => p.name === "status").schema.enum;
    expect(statusEnum).toEqual(["pending", "running", "waiting", "completed", "failed", "cancelled"]);
    // A value outside the documented enum is refused by the route with the same rule.
    const refused = await app.request("/v1/executions?status=sleeping");
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: "INVALID_INPUT" });

    const start = doc.paths["/v1/flows/{flowId}/executions"].post;
    expect(start.parameters).toEqual([{ name: "flowId", in: "path", required: true, schema: { type: "string" } }]);
    expect(Object.keys(start.requestBody.content["application/json"].schema.properties)).toEqual(expect.arrayContaining(["input", "tenantId", "priority"]));
    expect(start.responses["202"].content["application/json"].schema.required).toEqual(["executionId", "created"]);
    expect(doc.paths["/v1/queues/{region}/{handler}/pause"].post.security).toBeUndefined();
  });
});
