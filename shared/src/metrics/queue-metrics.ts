import { Gauge, type Registry } from "prom-client";
import type { Names } from "../protocol/names.js";
import type { Logger } from "../runtime/log.js";
import { readQueueSources, regionReach, statsOf, type QueueSource, type QueueStat, type RegionReach, type SourceRead } from "./queue-stats.js";

export interface QueueMetrics {
  /** The latest snapshot (empty until the first refresh). */
  latest(): readonly QueueStat[];
  /** Whether each region's domain answered the latest refresh (empty without a region topology). */
  regions(): readonly RegionReach[];
  /** Reads the consumers now (tests, and the first refresh). */
  refresh(): Promise<void>;
  stop(): void;
}

/**
 * Queue depth, ack-pending and redeliveries per pool, read from the pool consumers of every
 * domain's task stream (the hub's and each leaf region's) on a timer rather than on each
 * scrape: a burst of scrapes (several Prometheus replicas, a dashboard polling) costs the
 * server nothing more, and a scrape never waits on JetStream. A domain that does not answer
 * keeps its last numbers (a cut link should not make its queues look drained) and shows as
 * `fm_queue_region_reachable 0`.
 */
export function startQueueMetrics(options: { sources: readonly QueueSource[]; names: Names; registry: Registry; intervalMs: number; log: Logger }): QueueMetrics {
  // The last good read of each source, by position.
  let lastGood: Array<QueueStat[] | undefined> = options.sources.map(() => undefined);
  let snapshot: QueueStat[] = [];
  let reach: RegionReach[] = [];
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
  new Gauge({
    name: "fm_queue_region_reachable",
    help: "1 when the JetStream domain holding the region's task queue answered the last read, 0 when it did not (its fm_queue_* series keep their last values)",
    labelNames: ["region", "domain"] as const,
    registers: [options.registry],
    collect() {
      this.reset();
      for (const r of reach) this.set({ region: r.region, domain: r.domain }, r.reachable ? 1 : 0);
    },
  });

  const failing = new Set<string>();
  const refresh = async () => {
    const reads: SourceRead[] = await readQueueSources(options.sources, options.names);
    lastGood = reads.map((read, i) => ("stats" in read ? read.stats : lastGood[i]));
    // Kept stale rather than emptied: a blip in JetStream should not make queues look drained.
    snapshot = statsOf(reads.map((read, i) => ({ source: read.source, stats: lastGood[i] ?? [] })));
    reach = regionReach(reads);
    for (const read of reads) {
      const key = read.source.domain ?? "(own)";
      if ("error" in read) {
        if (!failing.has(key)) options.log.warn({ err: read.error, domain: key }, "could not read the pool consumers for queue metrics");
        failing.add(key);
      } else failing.delete(key);
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
    regions: () => reach,
    refresh: () => refresh(),
    stop: () => clearInterval(timer),
  };
}
