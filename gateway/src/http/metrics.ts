import { createMetricsRegistry } from "@flowmonkey/shared";
import type { MiddlewareHandler } from "hono";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  /** Counts and times every request by its route pattern (not its path, to bound the label set). */
  middleware: MiddlewareHandler;
}

export function createGatewayMetrics(options: { openStreams: () => number; processMetrics: boolean }): GatewayMetrics {
  const registry = createMetricsRegistry("gateway", { processMetrics: options.processMetrics });
  const registers = [registry];
  const requests = new Counter({
    name: "fm_gateway_requests_total",
    help: "HTTP requests by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "fm_gateway_request_duration_seconds",
    help: "HTTP request time to the response head, by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers,
  });
  new Gauge({
    name: "fm_gateway_sse_streams",
    help: "Open server-sent-event streams",
    registers,
    collect() {
      this.set(options.openStreams());
    },
  });
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now();
    await next();
    // Unmatched paths share one label value: a scanner probing random URLs cannot grow the series.
    const route = c.res.status === 404 && c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    duration.observe({ method: c.req.method, route }, (performance.now() - started) / 1000);
  };
  return { registry, middleware };
}
