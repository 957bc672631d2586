import { createMetricsRegistry, type Task, type TaskResult } from "@flowmonkey/shared";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** What the task pipeline reports as tasks start and settle; metrics are one listener. */
export interface TaskObserver {
  started(task: Task, deliveryCount: number): void;
  /** `result` absent: the run was abandoned (shutdown) and the task goes back to the queue. */
  finished(task: Task, result: TaskResult | undefined): void;
  /** Delivered again while its first delivery still runs here (held, not run twice). */
  redelivered(task: Task): void;
}

export interface WorkerMetrics extends TaskObserver {
  registry: Registry;
}

/** Handlers run from milliseconds (echo) to minutes (encodes): buckets span both. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
/** Queueing delay from the engine's publish to a worker's start: sub-millisecond to a long backlog. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * A worker's series: task duration by handler/region/outcome, dispatch latency (the task's
 * `dispatchedAt` to the start of its run, so it includes queueing), redeliveries, in-flight
 * and utilization (running / concurrency).
 */
export function createWorkerMetrics(options: { region: string; concurrency: number; running: () => number; processMetrics: boolean }): WorkerMetrics {
  const registry = createMetricsRegistry("worker", { processMetrics: options.processMetrics });
  const registers = [registry];
  const duration = new Histogram({
    name: "fm_task_duration_seconds",
    help: "Handler run time per task attempt, by handler, region and outcome (success, failure, wait, error, abandoned)",
    labelNames: ["handler", "region", "outcome"] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  const dispatchLatency = new Histogram({
    name: "fm_task_dispatch_latency_seconds",
    help: "Time from the engine's dispatch of a task to the start of its run on a worker",
    labelNames: ["handler", "region"] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const redeliveries = new Counter({
    name: "fm_task_redeliveries_total",
    help: "Task deliveries after the first (a worker died, or the heartbeat timeout passed)",
    labelNames: ["handler", "region"] as const,
    registers,
  });
  new Gauge({
    name: "fm_worker_tasks_in_flight",
    help: "Tasks this worker is running",
    registers,
    collect() {
      this.set(options.running());
    },
  });
  new Gauge({ name: "fm_worker_concurrency", help: "Tasks this worker may run at once", registers }).set(options.concurrency);
  new Gauge({
    name: "fm_worker_utilization",
    help: "Share of this worker's slots in use (running / concurrency)",
    registers,
    collect() {
      this.set(options.running() / options.concurrency);
    },
  });

  const started = new WeakMap<Task, number>();
  return {
    registry,
    started(task, deliveryCount) {
      const now = Date.now();
      started.set(task, now);
      const labels = { handler: task.handler.type, region: options.region };
      const dispatchedAt = Date.parse(task.metadata.dispatchedAt);
      // Clocks of different machines: a negative gap is skew, not a latency.
      if (Number.isFinite(dispatchedAt)) dispatchLatency.observe(labels, Math.max(0, now - dispatchedAt) / 1000);
      if (deliveryCount > 1) redeliveries.inc(labels);
    },
    redelivered(task) {
      redeliveries.inc({ handler: task.handler.type, region: options.region });
    },
    finished(task, result) {
      const outcome = result?.outcome ?? "abandoned";
      const seconds = result ? result.metrics.durationMs / 1000 : (Date.now() - (started.get(task) ?? Date.now())) / 1000;
      duration.observe({ handler: task.handler.type, region: options.region, outcome }, seconds);
    },
  };
}
