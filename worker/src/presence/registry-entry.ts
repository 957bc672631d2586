import { encode, type Logger, toError, WORKER_KEYS, type WorkerEntry } from "@flowmonkey/shared";
import type { KV } from "@nats-io/kv";

/** The entry's shape is public (`flowmonkey workers` and /v1/workers read it): its schema is in shared. */
export type { WorkerEntry };

/** Well inside the workers bucket's 30 s TTL, so a live worker never disappears from `flowmonkey workers`. */
export const REGISTRY_REFRESH_MS = 10_000;

export interface Presence {
  stop(): Promise<void>;
}

/**
 * This worker's entry in the workers bucket: written at start, refreshed (with the current
 * in-flight count) until stop, then deleted. The bucket's TTL removes the entry of a worker that
 * died without stopping. Presence is informational: a failed write is logged, never fatal.
 */
export async function startPresence(kv: KV, entry: () => WorkerEntry, log: Logger, refreshMs = REGISTRY_REFRESH_MS): Promise<Presence> {
  const { region, workerId } = entry();
  const key = WORKER_KEYS.key(region, workerId);
  const put = async () => {
    try {
      await kv.put(key, encode(entry()));
    } catch (thrown) {
      log.warn({ err: toError(thrown) }, "could not write the worker registry entry");
    }
  };
  await put();
  const timer = setInterval(() => void put(), refreshMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      try {
        await kv.delete(key);
      } catch (thrown) {
        log.warn({ err: toError(thrown) }, "could not delete the worker registry entry; it expires with the bucket TTL");
      }
    },
  };
}
