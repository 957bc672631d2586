import type { JetStreamManager } from "@nats-io/jetstream";
import { Gauge, type Registry } from "prom-client";
import { toError } from "../errors/coerce.js";
import type { Names } from "../protocol/names.js";
import type { Logger } from "../runtime/log.js";
import { readQueueStats, type QueueStat } from "./queue-stats.js";

export interface QueueMetrics {
  /** The latest snapshot (empty until the first refresh). */
  latest(): readonly QueueStat[];
  /** Reads the consumers now (tests, and the first refresh). */
  refresh(): Promise<void>;
  stop(): void;
}

/**
 * Queue depth, ack-pending and redeliveries per pool, read from the pool consumers on a timer
 * rather than on each scrape: a burst of scrapes (several Prometheus replicas, a dashboard
 * polling) costs the server nothing more, and a scrape never waits on JetStream.
 */
export function startQueueMetrics(options: { jsm: JetStreamManager; names: Names; registry: Registry; intervalMs: number; log: Logger }): QueueMetrics {
  let snapshot: QueueStat[] = [];
  // `capabilities` tells a handler's capability-qualified pools (each its own queue) from its
  // plain pool (""): `sum by (region, handler)` still adds up everything of a handler.
  const labelNames = ["region", "handler", "capabilities", "priority"] as const;
  const gauge = (name: string, help: string, pick: (s: QueueStat) => number) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [options.registry],
      collect() {
        this.reset();
        for (const s of snapshot) this.set({ region: s.region, handler: s.handler, capabilities: s.capabilities.join(","), priority: s.priority }, pick(s));
      },
    });
  gauge("fm_queue_depth", "Tasks waiting to be delivered, per pool consumer", (s) => s.pending);
  gauge("fm_queue_ack_pending", "Tasks delivered and not yet acknowledged, per pool consumer", (s) => s.ackPending);
  gauge("fm_queue_redelivered", "Tasks delivered more than once and not yet acknowledged, per pool consumer", (s) => s.redelivered);
  gauge("fm_queue_waiting_pulls", "Pull requests waiting at the server (idle workers), per pool consumer", (s) => s.waiting);

  let failedBefore = false;
  const refresh = async () => {
    try {
      snapshot = await readQueueStats(options.jsm, options.names);
      failedBefore = false;
    } catch (thrown) {
      // Kept stale rather than emptied: a blip in JetStream should not make queues look drained.
      if (!failedBefore) options.log.warn({ err: toError(thrown) }, "could not read the pool consumers for queue metrics");
      failedBefore = true;
    }
  };
  let inFlight: Promise<void> | undefined;
  const tick = () => {
    inFlight ??= refresh().finally(() => (inFlight = undefined));
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  return {
    latest: () => snapshot,
    refresh: () => refresh(),
    stop: () => clearInterval(timer),
  };
}
