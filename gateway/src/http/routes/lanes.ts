import { LanesRequest, parseWith } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "../deps.js";
import { allowOperator } from "../auth/access.js";

/**
 * Lanes (`<region>/<handler>`) that are not plainly healthy: a thin call into fm.api.lanes.
 * Circuits are those of the engine replica that answered (each replica keeps its own in
 * memory); tenants' lanes come from the database, so every replica answers them alike.
 */
export function lanesRoutes(deps: RouteDeps): Hono {
  const { api } = deps;
  const app = new Hono();

  app.get("/v1/lanes", async (c) => {
    // No parameters: the strict empty request makes a stray one a 400 instead of a silent no-op.
    allowOperator(c, "read");
    parseWith(LanesRequest, c.req.query(), "query");
    return c.json(await api.lanes());
  });

  return app;
}
