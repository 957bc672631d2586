import type { NatsConnection } from "@nats-io/nats-core";
import { abortableDelay, provisionRegion, toError, type Logger, type Names, type RegionProvisionOptions, type RegionTopology } from "@flowmonkey/shared";

export interface RegionProvisioning {
  /** Resolves once every leaf region was tried once, provisioned or not: the engine starts after it. */
  firstAttempt(): Promise<void>;
  /** Resolves once every leaf region answered at least once (tests wait on it; start does not). */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

const RETRY_MS = 2000;

/**
 * Creates each leaf region's streams in its domain. A region whose link is down when the engine
 * starts must not keep the engine (and every other region) from starting: it is provisioned in
 * the background, retried until it answers; until then its tasks wait in the outbox.
 */
export function provisionLeafRegions(
  nc: NatsConnection,
  names: Names,
  topology: RegionTopology,
  options: RegionProvisionOptions,
  log: Logger,
): RegionProvisioning {
  const abort = new AbortController();
  const tried: Array<Promise<void>> = [];
  const each = topology.leafRegions.map(async ({ region, domain }) => {
    let markTried!: () => void;
    tried.push(new Promise<void>((resolve) => (markTried = resolve)));
    for (let attempt = 1; !abort.signal.aborted; attempt++) {
      try {
        await provisionRegion(nc, names, region, domain, options);
        log.info({ region, domain }, "region provisioned");
        markTried();
        return;
      } catch (err) {
        markTried();
        if (attempt === 1 || attempt % 15 === 0) {
          log.warn({ region, domain, attempt, err: toError(err) }, "cannot provision the region yet (leaf node unreachable?); retrying");
        }
        await abortableDelay(RETRY_MS, abort.signal);
      }
    }
  });
  const all = Promise.all(each).then(() => undefined);
  const firstTries = Promise.all(tried).then(() => undefined);
  return {
    firstAttempt: () => firstTries,
    ready: () => all,
    async stop() {
      abort.abort();
      await all;
    },
  };
}
