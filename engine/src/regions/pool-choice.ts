import { canonicalCapabilities, hasCapabilities, isToken } from "@flowmonkey/shared";

/** A live worker of one region serving one handler, as the worker directory sees it. */
export interface LiveWorker {
  workerId: string;
  capabilities: readonly string[];
  inFlight: number;
  /** It pulls the pool of exactly its capabilities (false: a worker from before capability pools). */
  capabilityPools: boolean;
}

/**
 * The pool a task whose step requires `require` is published to, in a region where these live
 * workers serve its handler: the full, sorted capability set of a worker that offers every
 * required capability — the smallest such set (it leaves workers with more to the tasks that
 * need more), then the one whose workers run fewest tasks, then by name. [] (the handler's
 * plain pool) when nothing is required; undefined when no live worker offers them.
 *
 * A worker with capabilities pulls from its plain pool and from the pool of exactly its own
 * set, so only workers that offer the requirement can ever take the task. Workers from before
 * capability pools pull only plain pools: when only such workers offer the requirement, the
 * answer is their plain pool ([]), where the task went before (any worker of the pool may take
 * it; a current one without the capabilities refuses it). Pure: no I/O.
 */
export function choosePool(workers: readonly LiveWorker[], require: readonly string[] | undefined): string[] | undefined {
  if (!require?.length) return [];
  const pools = new Map<string, { capabilities: string[]; inFlight: number }>();
  let legacy = false;
  for (const w of workers) {
    // A registry entry with a capability that is no token cannot name a pool (nor come from a worker of this mesh).
    if (!w.capabilities.every(isToken) || !hasCapabilities(w.capabilities, require)) continue;
    if (!w.capabilityPools) {
      legacy = true;
      continue;
    }
    const capabilities = canonicalCapabilities(w.capabilities);
    const key = capabilities.join(",");
    const pool = pools.get(key) ?? { capabilities, inFlight: 0 };
    pool.inFlight += w.inFlight;
    pools.set(key, pool);
  }
  const best = [...pools.entries()].sort(
    ([ka, a], [kb, b]) => a.capabilities.length - b.capabilities.length || a.inFlight - b.inFlight || (ka < kb ? -1 : ka > kb ? 1 : 0),
  )[0];
  return best?.[1].capabilities ?? (legacy ? [] : undefined);
}
