/**
 * Concurrency accounting for one worker. A slot is either free, `requested` (promised to an
 * outstanding fetch that has not delivered yet) or `running` (a delivered task). The worker only
 * asks JetStream for free slots, so running + requested ≤ capacity always holds, and the server
 * never has more unacknowledged tasks out to this worker than it can run.
 */
export class Slots {
  readonly capacity: number;
  running = 0;
  requested = 0;
  #idle: Array<() => void> = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get free(): number {
    return this.capacity - this.running - this.requested;
  }

  reserve(n: number): void {
    if (n > this.free) throw new Error(`cannot reserve ${n} slots: only ${this.free} free`);
    this.requested += n;
  }

  /** A reservation turned into a delivered task. */
  deliver(): void {
    this.requested--;
    this.running++;
  }

  /** A fetch ended with `n` reservations unused. */
  unreserve(n: number): void {
    this.requested -= n;
  }

  finish(): void {
    this.running--;
    if (this.running === 0 && this.#idle.length) {
      const waiters = this.#idle;
      this.#idle = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no task is running. */
  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }
}

export interface PoolView {
  /** Fetches of this pool still open. */
  outstanding: number;
  /** Its last fetch came back full: there is probably more waiting. */
  hungry: boolean;
  /** Backing off after an error. */
  paused: boolean;
  /** Served in ascending order (0 = high priority); absent = 1. */
  rank?: number;
  /**
   * false: no idle probe; the pool fetches only while hungry (its last fetch came back full, or
   * it was told tasks are waiting). The high and low lanes work this way so that their probes
   * do not hold slots the normal lane could use.
   */
  probes?: boolean;
  /** Most more tasks worth asking for now (a lane that knows how many wait); absent: no cap. */
  limit?: number;
}

export interface FetchPlanInput {
  free: number;
  pools: readonly PoolView[];
  /** Round-robin start, so that under scarcity every pool gets its turn. */
  start: number;
  /** A pool that already has a fetch open only gets another one of at least this many. */
  minBatch: number;
  maxOutstanding: number;
}

export interface FetchPlan {
  grants: Array<{ pool: number; count: number }>;
  /** Where the next plan should start. */
  next: number;
}

/**
 * Splits free slots across pools, by priority and without starving anyone:
 * 1. in rank order (high, normal, low), round-robin within a rank, every pool that may fetch
 *    gets one slot — for an idle pool that is a one-task probe, held open until it expires, so a
 *    quiet handler type or a first high task is picked up at once;
 * 2. the remaining slots go to the hungry pools (those with a backlog) of the best rank that has
 *    any, split evenly among them: a high backlog is served before a normal one, which keeps
 *    only its one-slot share in the meantime.
 * Tiny extra fetches for a pool that already has one open are skipped: they cost a round trip
 * each and the open fetch will come back soon and return its unused slots.
 */
export function planFetches(input: FetchPlanInput): FetchPlan {
  const { pools, minBatch, maxOutstanding } = input;
  const n = pools.length;
  let free = input.free;
  if (free <= 0 || n === 0) return { grants: [], next: input.start };

  const grant = new Array<number>(n).fill(0);
  let next = input.start;
  const eligible: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = (input.start + k) % n;
    const p = pools[i]!;
    if (p.paused || p.limit === 0) continue;
    if (p.outstanding === 0 ? p.probes !== false || p.hungry : p.hungry && p.outstanding < maxOutstanding) eligible.push(i);
  }
  // Stable: round-robin order is kept within a rank.
  const rankOf = (i: number) => pools[i]!.rank ?? 1;
  eligible.sort((a, b) => rankOf(a) - rankOf(b));
  for (const i of eligible) {
    if (free === 0) break;
    grant[i] = 1;
    free--;
    next = (i + 1) % n;
  }
  // Hungry pools by rank: the best rank shares the rest evenly, each up to its cap; only what
  // capped pools cannot take goes on to the next rank.
  const room = (i: number) => (pools[i]!.limit ?? Number.POSITIVE_INFINITY) - grant[i]!;
  const hungryAll = eligible.filter((i) => grant[i]! > 0 && pools[i]!.hungry);
  for (const rank of [...new Set(hungryAll.map(rankOf))].sort((a, b) => a - b)) {
    let group = hungryAll.filter((i) => rankOf(i) === rank && room(i) > 0);
    while (free > 0 && group.length > 0) {
      const share = Math.max(1, Math.floor(free / group.length));
      for (const i of group) {
        const g = Math.min(share, room(i), free);
        grant[i]! += g;
        free -= g;
      }
      group = group.filter((i) => room(i) > 0);
    }
  }
  const grants: FetchPlan["grants"] = [];
  for (const i of eligible) {
    const count = grant[i]!;
    if (count === 0) continue;
    if (pools[i]!.outstanding > 0 && count < minBatch) continue;
    grants.push({ pool: i, count });
  }
  return { grants, next };
}
