import { FmError, toError, type Subjects } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "./deps.js";
import { isUnexpected, problemResponse, toProblem } from "./problem.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { dlqRoutes } from "./routes/dlq.js";
import { eventRoutes, type EventRoutes } from "./routes/events-sse.js";
import { executionRoutes } from "./routes/executions.js";
import { flowRoutes } from "./routes/flows.js";
import { healthRoutes } from "./routes/health.js";
import { lanesRoutes } from "./routes/lanes.js";
import { usageRoutes } from "./routes/usage.js";
import { secretRoutes } from "./routes/secrets.js";
import { workersRoutes } from "./routes/workers.js";

export interface GatewayApp {
  app: Hono;
  events: EventRoutes;
}

/** Every route, and the two places errors become problem+json: thrown errors and unknown routes. */
export function createApp(deps: RouteDeps, subjects: Subjects): GatewayApp {
  const app = new Hono();
  const events = eventRoutes(deps, subjects);

  app.route("/", healthRoutes(deps));
  app.route("/", flowRoutes(deps));
  app.route("/", executionRoutes(deps));
  app.route("/", dlqRoutes(deps));
  app.route("/", lanesRoutes(deps));
  app.route("/", usageRoutes(deps));
  app.route("/", secretRoutes(deps));
  app.route("/", workersRoutes({ ...deps, prefix: subjects.prefix }));
  app.route("/", events.app);
  app.route("/", dashboardRoutes());

  app.notFound((c) => problemResponse(toProblem(new FmError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`))));
  app.onError((thrown, c) => {
    if (isUnexpected(thrown)) deps.log.error({ err: toError(thrown), method: c.req.method, path: c.req.path }, "request failed");
    return problemResponse(toProblem(thrown));
  });
  return { app, events };
}
