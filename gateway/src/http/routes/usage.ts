import { parseWith, UsageRequest } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "../deps.js";
import { allow, confineTenant } from "../auth/access.js";

/** GET /v1/usage?tenantId=&from=&to=: active and paused milliseconds per tenant and pool tier (fm.api.usage). */
export function usageRoutes(deps: RouteDeps): Hono {
  const { api } = deps;
  const app = new Hono();
  app.get("/v1/usage", async (c) => {
    const tenant = allow(c, "read");
    const request = parseWith(UsageRequest, c.req.query(), "query");
    const tenantId = confineTenant(tenant, request.tenantId);
    return c.json(await api.usage({ ...request, ...(tenantId === undefined ? {} : { tenantId }) }));
  });
  return app;
}
