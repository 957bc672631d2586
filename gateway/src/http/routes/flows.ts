import { buildGraph, describeIssues, FlowDefinition, FmError, parseFlowDefinition, parseWith, Token } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody, readText } from "../body.js";
import type { RouteDeps } from "../deps.js";
import { allow, allowOperator } from "../auth/access.js";

export const FlowListQuery = z.object({ flowId: Token.optional() }).strict();

/** Validates a JSON definition the way flow files are validated, so HTTP and CLI agree on INVALID_FLOW. */
function validateDefinition(value: unknown): FlowDefinition {
  const parsed = FlowDefinition.safeParse(value);
  if (!parsed.success) throw new FmError("INVALID_FLOW", `flow definition: ${describeIssues(parsed.error)}`);
  buildGraph(parsed.data);
  return parsed.data;
}

/** Registering and listing flow definitions. */
export function flowRoutes(deps: RouteDeps): Hono {
  const { api, maxMessageBytes } = deps;
  const app = new Hono();

  // JSON by default; YAML too (`curl --data-binary @flow.yaml -H 'content-type: application/yaml'`).
  app.post("/v1/flows", limitBody(maxMessageBytes), async (c) => {
    // Flow definitions are shared by every tenant: registering one is an operator's act.
    allowOperator(c, "admin");
    const type = c.req.header("content-type") ?? "";
    const definition = /yaml/i.test(type)
      ? parseFlowDefinition(await readText(c, maxMessageBytes), "flow definition")
      : validateDefinition(await readBody(c, z.unknown(), { maxBytes: maxMessageBytes, what: "flow definition" }));
    const reply = await api.putFlow(definition);
    return c.json(reply, reply.created ? 201 : 200);
  });

  app.get("/v1/flows", async (c) => {
    allow(c, "read");
    const { flowId } = parseWith(FlowListQuery, c.req.query(), "query");
    return c.json(await api.listFlows(flowId));
  });

  return app;
}
