import { collectDefaultMetrics, Registry } from "prom-client";

/**
 * One registry per process component (not prom-client's global one), so an engine and workers
 * sharing a test process each expose only their own series. `service` becomes a default label.
 */
export function createMetricsRegistry(service: "engine" | "worker" | "gateway", options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // Process metrics (CPU, heap, event-loop lag) belong to the process; binaries turn them on.
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}
