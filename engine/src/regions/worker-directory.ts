import type { KV } from "@nats-io/kv";
import { decode, toError, WorkerEntry, type Logger } from "@flowmonkey/shared";
import type { LiveWorker } from "./pool-choice.js";

/** The workers bucket's TTL: an entry not refreshed for this long belongs to a dead worker. */
export const WORKER_ENTRY_TTL_MS = 30_000;

export interface WorkerDirectory {
  /** True when a live worker in `region` serves `handler` (capability pools: see `workers`). */
  serves(region: string, handler: string): boolean;
  /** The regions where a live worker serves `handler`. */
  regionsServing(handler: string): string[];
  /** The live workers in `region` that serve `handler`, with their capabilities (pool choice). */
  workers(region: string, handler: string): LiveWorker[];
  /** Whether the directory has heard of any worker yet (before that, it cannot rule regions out). */
  readonly known: boolean;
  stop(): Promise<void>;
}

/**
 * The engine's view of KV `fm_workers`, kept by watching the bucket. An entry that expires by
 * TTL leaves no delete marker for a watcher to see, so liveness is judged here by when the entry
 * was last written, against the same TTL.
 */
export async function watchWorkerDirectory(kv: KV, log: Logger, now: () => number = Date.now): Promise<WorkerDirectory> {
  const entries = new Map<string, { entry: WorkerEntry; writtenAt: number }>();
  const watch = await kv.watch({ key: ">" });
  const done = (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") {
        entries.delete(e.key);
        continue;
      }
      try {
        entries.set(e.key, { entry: decode(e.value, WorkerEntry), writtenAt: e.created.getTime() });
      } catch (err) {
        log.warn({ err: toError(err), key: e.key }, "ignoring a malformed worker registry entry");
      }
    }
  })().catch((err: unknown) => log.warn({ err: toError(err) }, "worker registry watch ended"));
  const live = function* (region: string, handler: string): Generator<WorkerEntry> {
    const liveSince = now() - WORKER_ENTRY_TTL_MS;
    for (const { entry, writtenAt } of entries.values()) {
      if (writtenAt >= liveSince && entry.region === region && entry.handlers.includes(handler)) yield entry;
    }
  };
  return {
    serves(region, handler) {
      return !live(region, handler).next().done;
    },
    regionsServing(handler) {
      const liveSince = now() - WORKER_ENTRY_TTL_MS;
      const regions = new Set<string>();
      for (const { entry, writtenAt } of entries.values()) if (writtenAt >= liveSince && entry.handlers.includes(handler)) regions.add(entry.region);
      return [...regions].sort();
    },
    workers(region, handler) {
      return [...live(region, handler)].map((e) => ({ workerId: e.workerId, capabilities: e.capabilities, inFlight: e.inFlight, capabilityPools: e.capabilityPools }));
    },
    get known() {
      return entries.size > 0;
    },
    async stop() {
      watch.stop();
      await done;
    },
  };
}
