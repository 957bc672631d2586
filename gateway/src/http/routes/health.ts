import { FmError, toFmError } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "../deps.js";
import { problemResponse, toProblem } from "../problem.js";

/**
 * Liveness that means something: NATS is connected and the engine answers fm.api (a cheap
 * flows.list with a short timeout). Anything else is a 503 problem saying which part is down.
 */
export function healthRoutes(deps: RouteDeps): Hono {
  const { nc, healthApi } = deps;
  const app = new Hono();

  app.get("/healthz", async (c) => {
    if (nc.isClosed() || nc.isDraining()) {
      return unavailable("the gateway's NATS connection is closed");
    }
    try {
      await healthApi.listFlows();
    } catch (thrown) {
      const err = toFmError(thrown);
      return unavailable(`the engine did not answer (${err.code}): ${err.message}`);
    }
    return c.json({ status: "ok", nats: nc.getServer(), engine: "ok" });
  });

  return app;
}

function unavailable(detail: string): Response {
  // UNAVAILABLE maps to 503 in the code table, which is what load balancers expect.
  return problemResponse(toProblem(new FmError("UNAVAILABLE", detail)));
}
