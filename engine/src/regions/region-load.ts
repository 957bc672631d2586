import type { NatsConnection } from "@nats-io/nats-core";
import { abortableDelay, toError, type Logger, type Names, type RegionTopology } from "@flowmonkey/shared";
import { createDomainManagers } from "./domain-managers.js";

export interface RegionLoad {
  /** Pending + ack-pending tasks of `handler`'s pools in `region` at the last refresh; undefined when unknown. */
  of(region: string, handler: string): number | undefined;
  /** Resolves after the next completed refresh (tests and the first routing decisions wait on it). */
  refreshed(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * How busy each region's pools are, read from the task consumers (num_pending + num_ack_pending,
 * summed over priorities), every `intervalMs`. One consumer list per domain; a domain that does
 * not answer keeps its last numbers (the relay sees an unreachable region at publish time).
 */
export function watchRegionLoad(nc: NatsConnection, names: Names, topology: RegionTopology | undefined, log: Logger, intervalMs: number): RegionLoad {
  const abort = new AbortController();
  let load = new Map<string, number>();
  let waiters: Array<() => void> = [];
  const managers = createDomainManagers(nc, topology, { timeoutMs: Math.max(1000, intervalMs) });

  async function refreshOnce(): Promise<void> {
    const next = new Map(load);
    await Promise.all(
      managers.domains.map(async (domain) => {
        try {
          const jsm = await managers.of(domain);
          const fresh = new Map<string, number>();
          for await (const c of jsm.consumers.list(names.streams.tasks)) {
            const pool = names.consumers.parseTaskPool(c.name);
            if (!pool) continue;
            const key = `${pool.region}/${pool.handler}`;
            fresh.set(key, (fresh.get(key) ?? 0) + c.num_pending + c.num_ack_pending);
          }
          for (const [key, n] of fresh) next.set(key, n);
        } catch (err) {
          log.debug({ domain: domain ?? "(own)", err: toError(err) }, "region load not refreshed");
        }
      }),
    );
    load = next;
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  }

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await refreshOnce();
      await abortableDelay(intervalMs, abort.signal);
    }
  })();

  return {
    of: (region, handler) => load.get(`${region}/${handler}`),
    refreshed: () => new Promise<void>((resolve) => waiters.push(resolve)),
    async stop() {
      abort.abort();
      await loop;
      for (const resolve of waiters) resolve();
    },
  };
}
