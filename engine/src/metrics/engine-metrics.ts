import { createMetricsRegistry, startQueueMetrics, type Logger, type Names, type QueueMetrics, type QueueSource } from "@flowmonkey/shared";
import { Counter, Gauge, type Registry } from "prom-client";
import type { RetentionTotals } from "../retention/retention-sweep.js";
import type { Db } from "../store/db.js";
import { countExecutionsByStatus, countOpenDeadTasks } from "../store/counts.js";
import { cachedRead } from "./cached.js";

/** Every status, so a status with no executions reads 0 instead of vanishing from the series. */
const STATUSES = ["pending", "running", "waiting", "completed", "failed", "cancelled"] as const;

export interface EngineMetrics {
  registry: Registry;
  queues: QueueMetrics;
  stop(): void;
}

/**
 * The engine's series: executions by status and open dead letters (from the database, cached
 * for `dbCacheMs` so a scrape storm is one query), and the pools' queues (from the consumers
 * of every domain's task stream, on a timer).
 */
export function createEngineMetrics(options: {
  db: Db;
  /** Every domain's task stream (the hub's and each leaf region's). */
  queueSources: readonly QueueSource[];
  names: Names;
  log: Logger;
  processMetrics: boolean;
  queueRefreshMs?: number;
  dbCacheMs?: number;
  /** What the retention sweep has forgotten so far. */
  retentionTotals?: () => RetentionTotals;
}): EngineMetrics {
  const registry = createMetricsRegistry("engine", { processMetrics: options.processMetrics });
  const ttl = options.dbCacheMs ?? 5000;
  const executions = cachedRead(() => countExecutionsByStatus(options.db), ttl);
  const deadTasks = cachedRead(() => countOpenDeadTasks(options.db), ttl);

  new Gauge({
    name: "fm_executions",
    help: "Executions by status (from the database, cached a few seconds)",
    labelNames: ["status"] as const,
    registers: [registry],
    async collect() {
      const counts = new Map((await executions()).map((r) => [r.status, r.count]));
      for (const status of STATUSES) this.set({ status }, counts.get(status) ?? 0);
    },
  });
  new Gauge({
    name: "fm_dlq_size",
    help: "Dead-lettered tasks not yet replayed, per pool (from the database, cached a few seconds)",
    labelNames: ["region", "handler"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of await deadTasks()) this.set({ region: r.region, handler: r.handler }, r.count);
    },
  });
  const retentionTotals = options.retentionTotals;
  if (retentionTotals) {
    new Counter({
      name: "fm_retention_purged_total",
      help: "Rows the retention sweep forgot: ended executions (with their tasks), and records (rejections, outbox dead letters)",
      labelNames: ["kind"] as const,
      registers: [registry],
      collect() {
        const totals = retentionTotals();
        this.reset();
        this.inc({ kind: "executions" }, totals.executions);
        this.inc({ kind: "records" }, totals.records);
      },
    });
  }
  const queues = startQueueMetrics({ sources: options.queueSources, names: options.names, registry, intervalMs: options.queueRefreshMs ?? 5000, log: options.log });
  return { registry, queues, stop: () => queues.stop() };
}
