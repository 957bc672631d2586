import type { JetStreamManager } from "@nats-io/jetstream";
import { toError } from "../errors/coerce.js";
import { parseTaskPoolName, type Names } from "../protocol/names.js";
import { PRIORITIES, type Priority } from "../protocol/tokens.js";

/** One worker pool's consumer (region, handler, capabilities, priority), as the server reports it. */
export interface QueueStat {
  region: string;
  handler: string;
  priority: Priority;
  /** A capability-qualified pool's capabilities (sorted): its own queue; [] for the handler's plain pool. */
  capabilities: string[];
  /** Tasks waiting to be delivered (the consumer's num_pending). */
  pending: number;
  /** Tasks delivered and not yet acknowledged (running, or lost and waiting for ack_wait). */
  ackPending: number;
  /** Tasks delivered more than once and not yet acknowledged. */
  redelivered: number;
  /** Pull requests waiting at the server: idle workers. */
  waiting: number;
}

/**
 * Depth and ack-pending of every pool consumer on the task stream of the connection's
 * JetStream domain: one consumer-list call, however many pools there are.
 */
export async function readQueueStats(jsm: JetStreamManager, names: Names): Promise<QueueStat[]> {
  const out: QueueStat[] = [];
  for await (const info of jsm.consumers.list(names.streams.tasks)) {
    const pool = parseTaskPoolName(info.name);
    if (!pool) continue;
    out.push({
      ...pool,
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      redelivered: info.num_redelivered,
      waiting: info.num_waiting,
    });
  }
  return sortStats(out);
}

function sortStats(stats: QueueStat[]): QueueStat[] {
  const pool = (s: QueueStat) => s.capabilities.join(",");
  return stats.sort(
    (a, b) => a.region.localeCompare(b.region) || a.handler.localeCompare(b.handler) || pool(a).localeCompare(pool(b)) || PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority),
  );
}

/** A JetStream domain's task stream to read, and the regions whose queues it holds. */
export interface QueueSource {
  /** The domain's name (the hub's for the engine's own stream); undefined on a single server without a topology. */
  domain: string | undefined;
  /** The regions the topology places in this domain; [] on a single server (every region, none named). */
  regions: readonly string[];
  jsm: JetStreamManager;
}

/** One source's read: its pool consumers, or why it could not be read. */
export type SourceRead = { source: QueueSource; stats: QueueStat[] } | { source: QueueSource; error: Error };

/** Whether the domain holding a region's queues answered. */
export interface RegionReach {
  region: string;
  domain: string;
  reachable: boolean;
  /** Why not, when not reachable. */
  error?: string;
}

/**
 * Reads every source at once; a source that fails (a leaf whose link is down answers "no
 * responders" at once, a half-dead link times out at its manager's timeout) is reported, not
 * thrown, so one region cannot keep the others from being seen.
 */
export async function readQueueSources(sources: readonly QueueSource[], names: Names): Promise<SourceRead[]> {
  return Promise.all(
    sources.map(async (source): Promise<SourceRead> => {
      try {
        return { source, stats: await readQueueStats(source.jsm, names) };
      } catch (thrown) {
        return { source, error: toError(thrown) };
      }
    }),
  );
}

/** Each region the sources name, with whether its domain answered in `reads`. */
export function regionReach(reads: readonly SourceRead[]): RegionReach[] {
  return reads
    .flatMap((read) =>
      read.source.domain === undefined
        ? []
        : read.source.regions.map((region): RegionReach => ({
            region,
            domain: read.source.domain!,
            reachable: !("error" in read),
            ...("error" in read ? { error: read.error.message } : {}),
          })),
    )
    .sort((a, b) => a.region.localeCompare(b.region));
}

/** Every read's rows, in queue order. */
export function statsOf(reads: readonly SourceRead[]): QueueStat[] {
  return sortStats(reads.flatMap((read) => ("stats" in read ? read.stats : [])));
}
