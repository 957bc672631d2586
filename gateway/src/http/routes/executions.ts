import { endSpan, ExecutionStatus, FlowStart, parseWith, ResumeToken, SpanKind, startSpanFrom, Token, traceparentOf } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody } from "../body.js";
import { tokenParam, type RouteDeps } from "../deps.js";
import { allow, assertVisible, confineTenant } from "../auth/access.js";

/** Query of GET /v1/executions. Strict, so a misspelt filter is an error rather than ignored. */
export const ExecutionListQuery = z
  .object({
    flowId: Token.optional(),
    status: ExecutionStatus.optional(),
    tenantId: z.string().min(1).max(128).optional(),
    limit: z.coerce.number().int().min(1).max(500).optional(),
    cursor: z.string().min(1).max(256).optional(),
  })
  .strict();

export const ResumeBody = z.object({ resumeToken: ResumeToken, payload: z.unknown().optional() }).strict();
/** POST /v1/resume/:token: the body is the payload itself (optional). */
export const ResumePayload = z.unknown();

/** Starting, reading, listing, cancelling and resuming executions: thin calls into fm.api. */
export function executionRoutes(deps: RouteDeps): Hono {
  const { api, maxMessageBytes } = deps;
  const app = new Hono();

  app.post("/v1/flows/:flowId/executions", limitBody(maxMessageBytes), async (c) => {
    const flowId = tokenParam("flowId", c.req.param("flowId"));
    // An empty body starts the flow with empty input, like `nats pub` with `{}`.
    const tenant = allow(c, "write");
    const start = await readBody(c, FlowStart, { maxBytes: maxMessageBytes, what: "FlowStart", empty: {} });
    // A tenant's token starts executions of its own tenant only, stamped with it.
    const tenantId = confineTenant(tenant, start.tenantId);
    // The trace starts here (or continues the caller's, from its traceparent header).
    const span = startSpanFrom("flowmonkey.start", c.req.header("traceparent"), { "flowmonkey.flow_id": flowId, "http.route": "/v1/flows/:flowId/executions" }, SpanKind.SERVER);
    let reply;
    try {
      reply = await api.start(flowId, { ...start, ...(tenantId === undefined ? {} : { tenantId }) }, { traceparent: traceparentOf(span) });
      span.setAttribute("flowmonkey.execution_id", reply.executionId);
      endSpan(span);
    } catch (err) {
      endSpan(span, err);
      throw err;
    }
    const { executionId, created } = reply;
    c.header("location", `/v1/executions/${executionId}`);
    return c.json({ executionId, created }, 202);
  });

  app.get("/v1/executions", async (c) => {
    const tenant = allow(c, "read");
    const query = parseWith(ExecutionListQuery, c.req.query(), "query");
    const tenantId = confineTenant(tenant, query.tenantId);
    return c.json(await api.list({ ...query, ...(tenantId === undefined ? {} : { tenantId }) }));
  });

  app.get("/v1/executions/:id", async (c) => {
    const tenant = allow(c, "read");
    const view = await api.get(tokenParam("id", c.req.param("id")));
    assertVisible(tenant, view);
    return c.json(view);
  });

  /** A tenant's token acts only on its tenant's executions: looked up first (an execution's tenant never changes). */
  const actOn = async (tenant: string | undefined, id: string) => {
    if (tenant !== undefined) assertVisible(tenant, await api.get(id));
    return id;
  };

  app.post("/v1/executions/:id/cancel", async (c) => {
    const tenant = allow(c, "write");
    return c.json(await api.cancel(await actOn(tenant, tokenParam("id", c.req.param("id")))));
  });

  app.post("/v1/executions/:id/steps/:stepId/retry", async (c) => {
    const tenant = allow(c, "write");
    const id = await actOn(tenant, tokenParam("id", c.req.param("id")));
    return c.json(await api.retryStep(id, tokenParam("stepId", c.req.param("stepId"))));
  });

  app.post("/v1/resume", limitBody(maxMessageBytes), async (c) => {
    const tenant = allow(c, "write");
    const { resumeToken, payload } = await readBody(c, ResumeBody, { maxBytes: maxMessageBytes, what: "resume request" });
    return c.json(await api.resume(resumeToken, payload, tenant));
  });

  app.post("/v1/resume/:token", limitBody(maxMessageBytes), async (c) => {
    const tenant = allow(c, "write");
    const token = parseWith(ResumeToken, c.req.param("token"), "path parameter token");
    // An empty body resumes without a payload.
    const payload = await readBody(c, ResumePayload, { maxBytes: maxMessageBytes, what: "resume payload", empty: null });
    return c.json(await api.resume(token, payload ?? undefined, tenant));
  });

  return app;
}
