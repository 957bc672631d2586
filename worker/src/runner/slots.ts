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
  /** Tasks are known to wait in it that no open fetch of this worker has asked for yet. */
  hungry: boolean;
  /** Backing off after an error. */
  paused: boolean;
  /** Served in ascending order (0 = high priority); absent = 1. */
  rank?: number;
  /** Most more tasks worth asking for now (how many are known to wait); absent: no cap. */
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
  /**
   * Slots a worker with room to spare keeps standing in each idle lane: a fetch open before any
   * task arrives, so a task is delivered the moment it is stored, without the doorbell's extra
   * round trip (doorbell -> fetch -> delivery). Given only while every lane can have one and
   * `free` stays above half the capacity, so it never takes a slot a hungry lane needs. 0 or
   * absent: idle lanes hold nothing (a worker with fewer slots than lanes).
   */
  standing?: number;
  /** The worker's concurrency (for the half-capacity reserve of standing fetches). */
  capacity?: number;
}

export interface FetchPlan {
  grants: Array<{ pool: number; count: number }>;
  /** Where the next plan should start. */
  next: number;
}

/**
 * Splits free slots across pools, by priority and without starving anyone. Only a pool known to
 * have tasks waiting (hungry) gets a slot: an idle pool holds none — its doorbell (the worker's
 * subscription to its task subject) makes it hungry the moment a task is published — so a worker
 * with fewer slots than pools still serves every pool and lane at once.
 * 1. in rank order (high, normal, low), round-robin within a rank, every hungry pool gets one
 *    slot; with one free slot the best rank with work takes it;
 * 2. the remaining slots go to the hungry pools of the best rank that has any, split evenly among
 *    them up to what each knows to wait: a high backlog is served before a normal one, which
 *    keeps only its one-slot share in the meantime.
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
    if (p.hungry && p.outstanding < maxOutstanding) eligible.push(i);
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
  grants.push(...standingFetches(input, free, grant));
  return { grants, next };
}

/**
 * Standing fetches for idle lanes (no fetch open, none granted now), best rank first, while the
 * slots left after them stay at or above half the capacity (see FetchPlanInput.standing).
 */
function standingFetches(input: FetchPlanInput, free: number, granted: readonly number[]): FetchPlan["grants"] {
  const size = input.standing ?? 0;
  const capacity = input.capacity ?? 0;
  if (size <= 0) return [];
  const idle = input.pools
    .map((p, i) => ({ p, i }))
    .filter(({ p, i }) => !p.paused && p.outstanding === 0 && granted[i] === 0)
    .sort((a, b) => (a.p.rank ?? 1) - (b.p.rank ?? 1));
  const grants: FetchPlan["grants"] = [];
  for (const { i } of idle) {
    if (free - size < capacity / 2) break;
    grants.push({ pool: i, count: size });
    free -= size;
  }
  return grants;
}
