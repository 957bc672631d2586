import { type Logger, toError } from "@flowmonkey/shared";
import type { JsMsg } from "@nats-io/jetstream";
import { planFetches, Slots } from "./slots.js";
import type { PoolHooks, TaskPool } from "./task-consumer.js";

export interface PullerOptions {
  concurrency: number;
  /** Runs one delivered task to its end (never rejects). */
  run(pool: TaskPool, msg: JsMsg): Promise<void>;
  log: Logger;
}

/** At most this many fetches open per pool: one filling while the next is already asked for. */
const MAX_OUTSTANDING_PER_POOL = 2;
/** Slots per lane a worker needs for each slot of standing fetch in its idle lanes (planFetches' `standing`). */
const STANDING_SLOTS_PER_LANE = 4;
/** The largest standing fetch: enough that a steady trickle of tasks rarely needs a new pull request. */
const MAX_STANDING = 32;

/**
 * How many slots each idle lane keeps standing: one per STANDING_SLOTS_PER_LANE slots per lane,
 * up to MAX_STANDING, so at most a quarter of the worker's slots wait in idle lanes. A standing
 * fetch of one ends with its first task and the next task needs a new pull request (a
 * subscription, a request and an unsubscription at the server: measured 0.93 pull requests per
 * task at 300 tasks/s); a standing fetch of k serves k tasks, or expires, before the next.
 */
export function standingSize(capacity: number, lanes: number): number {
  if (lanes === 0) return 0;
  return Math.min(MAX_STANDING, Math.floor(capacity / (STANDING_SLOTS_PER_LANE * lanes)));
}

/**
 * Turns free slots into fetches. Every event that may free a slot (a task finished, a fetch
 * ended, a pool recovered) schedules one planning pass; passes are coalesced to one per turn of
 * the event loop, so a burst of completions becomes one larger fetch instead of many small ones.
 */
export class Puller implements PoolHooks {
  readonly slots: Slots;
  readonly #pools: TaskPool[] = [];
  readonly #options: PullerOptions;
  readonly #minBatch: number;
  #cursor = 0;
  #scheduled = false;
  #stopped = false;
  #onAllEnded: Array<() => void> = [];

  constructor(options: PullerOptions) {
    this.#options = options;
    this.slots = new Slots(options.concurrency);
    this.#minBatch = Math.max(1, Math.floor(options.concurrency / 4));
  }

  /**
   * Standing slots per idle lane (standingSize): its tasks then skip the doorbell round trip. A
   * worker with fewer than STANDING_SLOTS_PER_LANE slots per lane (few slots, many handlers)
   * keeps idle lanes empty and serves them through their doorbells.
   */
  #standing(): number {
    return standingSize(this.slots.capacity, this.#pools.length);
  }

  /** The hooks each pool reports to are this puller; pools are added before start(). */
  addPool(pool: TaskPool): void {
    this.#pools.push(pool);
  }

  start(): void {
    this.#schedule();
  }

  /** Stop pulling: no new fetches, open ones end now. Resolves once every open fetch has ended. */
  stop(): Promise<void> {
    this.#stopped = true;
    for (const pool of this.#pools) pool.stop();
    return this.#fetchesEnded();
  }

  #fetchesEnded(): Promise<void> {
    if (this.#pools.every((p) => p.outstanding === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#onAllEnded.push(resolve));
  }

  onMessage(pool: TaskPool, msg: JsMsg): void {
    this.slots.deliver();
    this.#options
      .run(pool, msg)
      .catch((thrown: unknown) => this.#options.log.error({ err: toError(thrown), handler: pool.handler }, "task runner failed"))
      .finally(() => {
        this.slots.finish();
        this.#schedule();
      });
  }

  onFetchEnd(_pool: TaskPool, unfilled: number): void {
    this.slots.unreserve(unfilled);
    if (this.#stopped && this.#onAllEnded.length && this.#pools.every((p) => p.outstanding === 0)) {
      for (const resolve of this.#onAllEnded.splice(0)) resolve();
    }
    this.#schedule();
  }

  onResume(): void {
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#stopped) this.#plan();
    });
  }

  #plan(): void {
    const plan = planFetches({
      free: this.slots.free,
      pools: this.#pools,
      start: this.#cursor,
      minBatch: this.#minBatch,
      maxOutstanding: MAX_OUTSTANDING_PER_POOL,
      standing: this.#standing(),
      capacity: this.slots.capacity,
    });
    this.#cursor = plan.next;
    for (const { pool, count } of plan.grants) {
      this.slots.reserve(count);
      this.#pools[pool]!.fetch(count);
    }
  }
}
