import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { QueueSource, RegionTopology } from "@flowmonkey/shared";

/**
 * JetStream managers per domain, for the engine's connection (on the hub). `undefined` and the
 * hub's own domain are the connection's own JetStream; a leaf domain is reached through
 * `$JS.<domain>.API` over its link.
 */
export interface DomainManagers {
  /** The manager of `domain` (undefined or the hub's domain: the connection's own). */
  of(domain: string | undefined): Promise<JetStreamManager>;
  /** The leaf domain that holds `region`'s task stream; undefined for the hub's own (or a region the topology does not map). */
  domainOfRegion(region: string): string | undefined;
  /** True for undefined and the hub's domain: the connection's own JetStream. */
  isOwn(domain: string | undefined): boolean;
  /** Every domain with a task stream: undefined (the connection's own) first, then each leaf domain once. */
  readonly domains: ReadonlyArray<string | undefined>;
}

/**
 * Managers are made without the account-info request (`checkAPI: false`), so making one does no
 * I/O and cannot fail: a domain whose link is down when it is first asked for is not remembered
 * as a rejected promise. Each request then fails on its own (no responders) until the link returns.
 */
export function createDomainManagers(nc: NatsConnection, topology: RegionTopology | undefined, options: { timeoutMs?: number } = {}): DomainManagers {
  const managers = new Map<string | undefined, Promise<JetStreamManager>>();
  const isOwn = (domain: string | undefined) => domain === undefined || domain === topology?.hubDomain;
  const leafDomains = topology ? [...new Set(topology.leafRegions.map((l) => l.domain))] : [];
  return {
    of(domain) {
      const key = isOwn(domain) ? undefined : domain;
      let jsm = managers.get(key);
      if (!jsm) {
        jsm = jetstreamManager(nc, { checkAPI: false, ...(key ? { domain: key } : {}), ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}) });
        managers.set(key, jsm);
      }
      return jsm;
    },
    domainOfRegion(region) {
      const domain = topology?.domainOf(region);
      return isOwn(domain) ? undefined : domain;
    },
    isOwn,
    domains: [undefined, ...leafDomains],
  };
}

/**
 * The task stream of every domain, with the regions it holds, for the queue views (fm.api.queues
 * and the fm_queue_* series): the engine's own (the hub's regions) and each leaf domain's. On a
 * single server without a topology, one source that names no region.
 */
export async function queueSources(domains: DomainManagers, topology: RegionTopology | undefined): Promise<QueueSource[]> {
  return Promise.all(
    domains.domains.map(async (domain) => ({
      domain: domain ?? topology?.hubDomain,
      regions: !topology ? [] : domain === undefined ? topology.hubRegions : topology.leafRegions.filter((l) => l.domain === domain).map((l) => l.region),
      jsm: await domains.of(domain),
    })),
  );
}
