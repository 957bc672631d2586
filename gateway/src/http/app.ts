import { createNames, FmError, toError, type Subjects } from "@flowmonkey/shared";
import { Hono } from "hono";
import type { RouteDeps } from "./deps.js";
import { isUnexpected, problemResponse, toProblem } from "./problem.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { dlqRoutes } from "./routes/dlq.js";
import { eventRoutes, type EventRoutes } from "./routes/events-sse.js";
import { executionRoutes } from "./routes/executions.js";
import { flowRoutes } from "./routes/flows.js";
import { healthRoutes } from "./routes/health.js";
import { createGatewayMetrics } from "./metrics.js";
import { operatorRoutes } from "./routes/operators.js";
import { openApiDocument } from "./openapi/document.js";
import { requireToken } from "./auth/access.js";
import { corsFor, failedTokenLimiter, securityHeaders } from "./hardening.js";
import type { ApiTokens } from "./auth/tokens.js";
import { GATEWAY_VERSION } from "../version.js";
import { lanesRoutes } from "./routes/lanes.js";
import { usageRoutes } from "./routes/usage.js";
import { secretRoutes } from "./routes/secrets.js";
import { scheduleRoutes } from "./routes/schedules.js";

export interface GatewayApp {
  app: Hono;
  events: EventRoutes;
}

/** Every route, and the two places errors become problem+json: thrown errors and unknown routes. */
export function createApp(
  deps: RouteDeps,
  subjects: Subjects,
  options: { processMetrics?: boolean; apiTokens?: ApiTokens | undefined; corsOrigins?: readonly string[] | undefined } = {},
): GatewayApp {
  const app = new Hono();
  app.use(securityHeaders());
  const corsMiddleware = corsFor(options.corsOrigins ?? []);
  if (corsMiddleware) app.use("/v1/*", corsMiddleware);
  const events = eventRoutes(deps, subjects);
  const metrics = createGatewayMetrics({ openStreams: () => events.openStreams(), processMetrics: options.processMetrics ?? false });

  app.use(metrics.middleware);
  app.get("/metrics", async (c) => c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }));
  // Built once: the routes and their schemas do not change while the process runs.
  const openapi = openApiDocument({ version: GATEWAY_VERSION, secured: options.apiTokens !== undefined });
  app.get("/openapi.json", (c) => c.json(openapi));
  // With tokens configured, every /v1 route needs one (probes, metrics and the document do not).
  // Ten wrong tokens a minute from one address, then 429 until the minute is over.
  if (options.apiTokens) app.use("/v1/*", requireToken(new Map(Object.entries(options.apiTokens)), failedTokenLimiter({ max: 10, windowMs: 60_000 })));
  app.route("/", healthRoutes(deps));
  app.route("/", flowRoutes(deps));
  app.route("/", executionRoutes(deps));
  app.route("/", dlqRoutes(deps));
  app.route("/", lanesRoutes(deps));
  app.route("/", usageRoutes(deps));
  app.route("/", operatorRoutes(deps, createNames(subjects.prefix)));
  app.route("/", secretRoutes(deps));
  app.route("/", scheduleRoutes(deps));
  app.route("/", events.app);
  app.route("/", dashboardRoutes());

  app.notFound((c) => problemResponse(toProblem(new FmError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`))));
  app.onError((thrown, c) => {
    if (isUnexpected(thrown)) deps.log.error({ err: toError(thrown), method: c.req.method, path: c.req.path }, "request failed");
    return problemResponse(toProblem(thrown));
  });
  return { app, events };
}
