import { FmError, toFmError } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "../deps.js";
import { problemResponse, toProblem } from "../problem.js";

/**
 * Two probes with different jobs. /healthz (liveness) answers whenever this process serves
 * HTTP: restarting the gateway would not fix a down engine, so it does not look further.
 * /readyz (readiness) is true only when requests can succeed: NATS connected and an engine
 * answering fm.api.health, which runs `SELECT 1` on its store. A failure is a 503 problem
 * naming the part that is down.
 */
export function healthRoutes(deps: RouteDeps): Hono {
  const { nc, healthApi } = deps;
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    if (nc.isClosed() || nc.isDraining()) {
      return unavailable("the gateway's NATS connection is closed");
    }
    try {
      const engine = await healthApi.health();
      return c.json({ status: "ok", nats: nc.getServer(), engine: { status: engine.status, version: engine.version }, store: { kind: engine.store, latencyMs: engine.storeLatencyMs } });
    } catch (thrown) {
      const err = toFmError(thrown);
      return unavailable(`the engine or its store did not answer (${err.code}): ${err.message}`);
    }
  });

  return app;
}

function unavailable(detail: string): Response {
  // UNAVAILABLE maps to 503 in the code table, which is what load balancers expect.
  return problemResponse(toProblem(new FmError("UNAVAILABLE", detail)));
}
