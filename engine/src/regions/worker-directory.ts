import type { KV } from "@nats-io/kv";
import { decode, toError, WORKER_ENTRY_TTL_MS, WORKER_KEYS, WORKER_MARKER_TTL_MS, WorkerEntry, type Logger } from "@flowmonkey/shared";
import type { LiveWorker } from "./pool-choice.js";

export interface WorkerDirectory {
  /** True when a live worker in `region` serves `handler` (capability pools: see `workers`). */
  serves(region: string, handler: string): boolean;
  /** The regions where a live worker serves `handler`. */
  regionsServing(handler: string): string[];
  /** The live workers in `region` that serve `handler`, with their capabilities (pool choice). */
  workers(region: string, handler: string): LiveWorker[];
  /** Whether the server tells of expired entries (delete markers, nats-server 2.11+) rather than the engine's clock. */
  readonly markers: boolean;
  /** Whether the directory has heard of any worker yet (before that, it cannot rule regions out). */
  readonly known: boolean;
  stop(): Promise<void>;
}

/**
 * The engine's view of KV `fm_workers`, kept by watching the bucket.
 *
 * On nats-server 2.11+ the bucket leaves a delete marker when an entry expires (provision.ts,
 * ensureWorkersBucket): the server says when a worker is gone, the watch removes it, and the
 * engine's clock plays no part — a clock ahead of the server's by more than the entry TTL used to
 * make every worker look dead. Only an entry older than a marker's whole life counts as dead by
 * age (its marker was missed). On 2.9 and 2.10 an expired entry leaves nothing to see, so liveness
 * is judged by when the entry was last written, against the TTL, and dead entries are dropped.
 */
export async function watchWorkerDirectory(kv: KV, log: Logger, now: () => number = Date.now): Promise<WorkerDirectory> {
  const entries = new Map<string, { entry: WorkerEntry; writtenAt: number }>();
  const markers = (await kv.status()).markerTTL > 0;
  const maxAgeMs = markers ? WORKER_MARKER_TTL_MS + WORKER_ENTRY_TTL_MS : WORKER_ENTRY_TTL_MS;
  const watch = await kv.watch({ key: ">" });
  const done = (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") {
        entries.delete(e.key);
        continue;
      }
      let entry: WorkerEntry;
      try {
        entry = decode(e.value, WorkerEntry);
      } catch (err) {
        log.warn({ err: toError(err), key: e.key }, "ignoring a malformed worker registry entry");
        continue;
      }
      // An entry counts only under its own region's key: the one key space its writer may use.
      if (!WORKER_KEYS.holds(e.key, entry)) {
        entries.delete(e.key);
        log.warn({ key: e.key, workerId: entry.workerId, region: entry.region }, "ignoring a worker registry entry not under <region>.<workerId> (written by an older worker, or one claiming another region)");
        continue;
      }
      entries.set(e.key, { entry, writtenAt: e.created.getTime() });
    }
  })().catch((err: unknown) => log.warn({ err: toError(err) }, "worker registry watch ended"));
  /** The live entries; dead ones leave the map (without markers nothing else would remove them). */
  const liveEntries = function* (): Generator<WorkerEntry> {
    const liveSince = now() - maxAgeMs;
    for (const [key, { entry, writtenAt }] of entries) {
      if (writtenAt >= liveSince) yield entry;
      else entries.delete(key);
    }
  };
  const live = function* (region: string, handler: string): Generator<WorkerEntry> {
    for (const entry of liveEntries()) if (entry.region === region && entry.handlers.includes(handler)) yield entry;
  };
  return {
    serves(region, handler) {
      return !live(region, handler).next().done;
    },
    regionsServing(handler) {
      const regions = new Set<string>();
      for (const entry of liveEntries()) if (entry.handlers.includes(handler)) regions.add(entry.region);
      return [...regions].sort();
    },
    workers(region, handler) {
      return [...live(region, handler)].map((e) => ({ workerId: e.workerId, capabilities: e.capabilities, inFlight: e.inFlight, capabilityPools: e.capabilityPools }));
    },
    markers,
    get known() {
      return entries.size > 0;
    },
    async stop() {
      watch.stop();
      await done;
    },
  };
}
