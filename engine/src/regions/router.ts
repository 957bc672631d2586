import { FmError, type RegionTopology, type ResidencyRules } from "@flowmonkey/shared";
import { choosePool } from "./pool-choice.js";
import type { RegionLoad } from "./region-load.js";
import type { WorkerDirectory } from "./worker-directory.js";

/**
 * What a step asks of routing, written next to its task in the outbox (never published):
 * `pinned` — the step names its region (affinity that load does not override); `residency` —
 * the rule whose regions alone may store and run its data; `require` — worker capabilities.
 */
export interface TaskRoute {
  pinned?: true;
  residency?: string;
  require?: string[];
}

export interface RouterOptions {
  /** FM_RESIDENCY: rule → allowed regions, in order of preference. */
  residency: ResidencyRules;
  /** Leaf regions: failover and least-busy choose among all of them; absent = one server, no failover. */
  topology: RegionTopology | undefined;
  load?: RegionLoad | undefined;
  directory?: WorkerDirectory | undefined;
  /** How many more queued tasks the preferred region may have than the least busy one before a task moves. */
  busyMargin: number;
  /** A region that gave no responders is tried last for this long. */
  unreachableForMs?: number;
  /** True when an operator paused the lane `<region>/<handler>`: no task is moved there (its own tasks are parked by the relay). */
  lanePaused?: (region: string, handler: string) => boolean;
  now?: () => number;
}

/** `pools`: per planned region, the capability pool to publish to ([] for the plain pool). */
export type RoutePlan = { ok: true; regions: string[]; pools: ReadonlyMap<string, readonly string[]> } | { ok: false; error: FmError };

/**
 * Decides, for one task about to be published, the regions to try in order. The affinity region
 * (the step's `region`, else its execution's) comes first unless residency forbids it, a required
 * capability is missing there, or (unpinned steps) it is busier than another allowed region by
 * more than the margin. Residency is a hard filter: no plan ever contains a region outside the
 * rule, so failover cannot move resident data.
 */
export class RegionRouter {
  private readonly unreachableUntil = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: RouterOptions) {
    this.now = o.now ?? Date.now;
  }

  plan(task: { region: string; handler: string; sealed: boolean }, route: TaskRoute): RoutePlan {
    const { directory, load } = this.o;
    const affinity = task.region;
    let allowed: string[];
    if (route.residency !== undefined) {
      const rule = this.o.residency[route.residency];
      if (!rule) return refuse("RESIDENCY_UNKNOWN", `residency rule ${JSON.stringify(route.residency)} is not defined in FM_RESIDENCY; the task is held`);
      allowed = [...rule];
    } else {
      allowed = this.o.topology ? unique([affinity, ...this.o.topology.hubRegions, ...this.o.topology.leafRegions.map((l) => l.region)]) : [affinity];
    }
    // Secrets are sealed for the affinity region's pool: only that region can open them.
    if (task.sealed) allowed = allowed.filter((r) => r === affinity);
    // A lane an operator paused takes no tasks moved from other regions (failover, least busy):
    // pausing eu-west-1/http means no new http tasks there. The affinity lane's own pause is the
    // relay's (it parks the task before routing).
    const paused = this.o.lanePaused;
    if (paused) allowed = allowed.filter((r) => r === affinity || !paused(r, task.handler));
    if (allowed.length === 0) return refuse("REGION_UNAVAILABLE", `the task's secrets are sealed for ${affinity}, which its residency rule does not allow`);
    // Chosen once, here: the publisher sends to the pool the plan names.
    const pools = new Map<string, readonly string[]>();
    for (const r of allowed) {
      const pool = this.poolFor(r, task.handler, route.require);
      if (pool !== undefined) pools.set(r, pool);
    }
    if (route.require?.length) {
      const require = route.require;
      allowed = allowed.filter((r) => pools.has(r));
      if (allowed.length === 0) {
        return refuse("CAPABILITY_UNAVAILABLE", `no live worker with ${require.join(", ")} serves ${task.handler} in an allowed region; the task waits`);
      }
    }
    const served = (r: string) => !directory?.known || directory.serves(r, task.handler);
    const loadOf = (r: string) => load?.of(r, task.handler) ?? 0;
    const byPreference = (a: string, b: string) => Number(served(b)) - Number(served(a)) || loadOf(a) - loadOf(b);
    const primary = allowed.includes(affinity) ? affinity : undefined;
    const rest = allowed.filter((r) => r !== primary).sort(byPreference);
    let order: string[];
    if (primary === undefined) order = rest;
    else if (route.pinned) order = [primary, ...rest];
    else {
      const best = rest[0];
      const moves = best !== undefined && served(best) && (!served(primary) || loadOf(primary) - loadOf(best) > this.o.busyMargin);
      order = moves ? [best, primary, ...rest.slice(1)] : [primary, ...rest];
    }
    // A region that just gave no responders goes last (stable): its link is probably still down.
    const t = this.now();
    const down = (r: string) => (this.unreachableUntil.get(r) ?? 0) > t;
    return { ok: true, regions: [...order.filter((r) => !down(r)), ...order.filter(down)], pools };
  }

  /**
   * The pool of `handler` in `region` for a task that requires `require`: [] (the plain pool)
   * when nothing is required, else the capability set of the capability-qualified pool to publish
   * to (see choosePool); undefined when no live worker there offers the requirement.
   */
  poolFor(region: string, handler: string, require: readonly string[] | undefined): string[] | undefined {
    if (!require?.length) return [];
    return choosePool(this.o.directory?.workers(region, handler) ?? [], require);
  }

  markUnreachable(region: string): void {
    this.unreachableUntil.set(region, this.now() + (this.o.unreachableForMs ?? 2000));
  }

  markReachable(region: string): void {
    this.unreachableUntil.delete(region);
  }
}

function refuse(code: "RESIDENCY_UNKNOWN" | "REGION_UNAVAILABLE" | "CAPABILITY_UNAVAILABLE", message: string): RoutePlan {
  return { ok: false, error: new FmError(code, message) };
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}
