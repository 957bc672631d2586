import type { JetStreamManager } from "@nats-io/jetstream";
import { parseTaskPoolName, type Names, type TaskPoolName } from "../protocol/names.js";
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

/** `pool_<region>_<handler>[~<cap>…]_<priority>` → its parts; regions have no `_`, priorities are the last token. */
export function parsePoolConsumer(name: string): TaskPoolName | undefined {
  return parseTaskPoolName(name);
}

/**
 * Depth and ack-pending of every pool consumer on the task stream of the connection's
 * JetStream domain: one consumer-list call, however many pools there are.
 */
export async function readQueueStats(jsm: JetStreamManager, names: Names): Promise<QueueStat[]> {
  const out: QueueStat[] = [];
  for await (const info of jsm.consumers.list(names.streams.tasks)) {
    const pool = parsePoolConsumer(info.name);
    if (!pool) continue;
    out.push({
      ...pool,
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      redelivered: info.num_redelivered,
      waiting: info.num_waiting,
    });
  }
  const pool = (s: QueueStat) => s.capabilities.join(",");
  return out.sort(
    (a, b) => a.region.localeCompare(b.region) || a.handler.localeCompare(b.handler) || pool(a).localeCompare(pool(b)) || PRIORITIES.indexOf(a.priority) - PRIORITIES.indexOf(b.priority),
  );
}
