import { abortableDelay, type Logger, poolToken, PRIORITIES, type Priority, toError } from "@flowmonkey/shared";
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { Heartbeat } from "./heartbeat.js";
import type { PoolView } from "./slots.js";

export interface PoolHooks {
  /** A reserved slot was filled with a delivered message. */
  onMessage(pool: TaskPool, msg: JsMsg): void;
  /** A fetch ended; `unfilled` of its reserved slots were never used. */
  onFetchEnd(pool: TaskPool, unfilled: number): void;
  /** A pause after an error is over; the pool may fetch again. */
  onResume(pool: TaskPool): void;
}

export interface TaskPoolOptions {
  handler: string;
  priority: Priority;
  /** The capability-qualified pool's capabilities; [] (the default) for the handler's plain pool. */
  capabilities?: readonly string[];
  consumer: Consumer;
  /** The durable consumer's name (its nak advisories are one of the lane's doorbells). */
  consumerName: string;
  heartbeat: Heartbeat;
  /** How long a pull request waits at the server for tasks (≥ 1000 ms). */
  expiresMs: number;
  /** Called after a fetch error, before fetching again: re-creates a deleted consumer. */
  recover: () => Promise<Consumer>;
  hooks: PoolHooks;
  log: Logger;
}

/** How a pool shows in logs: `echo`, or `echo~gpu` for a capability-qualified pool (its subject token). */
export function poolLabel(handler: string, capabilities: readonly string[] = []): string {
  return poolToken(handler, capabilities) ?? handler;
}

/**
 * A consumer info time (`delivered.last_active`) as epoch ms; 0 when absent or unreadable. The
 * server sends an RFC 3339 string there, whatever the client's type says.
 */
export function timestampMs(raw: unknown): number {
  const ms = typeof raw === "string" ? Date.parse(raw) : Number.NaN;
  return Number.isFinite(ms) ? ms : 0;
}

/** Wait after a failed fetch before the next one, so a missing stream or a broken link is not a hot loop. */
export const FETCH_ERROR_PAUSE_MS = 1000;

/**
 * The pull side of one lane of a (region, handler) pool: the worker's share of the durable
 * consumer that every worker of the pool fetches from. It fetches exactly as many tasks as it is
 * told to, never more, and reports each delivery and each fetch's end; slot accounting lives in
 * the puller.
 *
 * An idle lane holds no pull request and no slot. It knows how many tasks wait in it (`#waiting`,
 * an estimate the planner turns into fetches) from:
 * - its doorbells: the worker's plain subscriptions to the lane's task subject and to its
 *   consumer's nak advisories, `ring()` per task published or handed back — the lane fetches
 *   within a round trip, whichever of the worker's lanes it is;
 * - each delivered message, whose `info.pending` is what is still undelivered in the consumer
 *   (a backlog, tasks published before this worker started); a redelivered one may have more
 *   redeliveries behind it, which `pending` does not count, so the lane asks for one more;
 * - `watch()`: every few seconds an idle lane asks the server for a backlog, and for a redelivery
 *   that may be due (a task of a worker that died), which nothing announces.
 */
export class TaskPool implements PoolView {
  readonly handler: string;
  readonly priority: Priority;
  readonly capabilities: readonly string[];
  /** `handler` or `handler~cap…`: the pool in logs. */
  readonly pool: string;
  /** 0 for high: the puller serves lower ranks first. */
  readonly rank: number;
  readonly consumerName: string;
  readonly heartbeat: Heartbeat;
  outstanding = 0;
  requested = 0;
  paused = false;
  /** Tasks believed to wait in the lane, undelivered (the ones open fetches asked for included). */
  #waiting = 0;
  /** When the watch last asked for a possibly due redelivery (0: never). */
  #sweptAt = 0;
  #watch: NodeJS.Timeout | undefined;
  #consumer: Consumer;
  readonly #options: TaskPoolOptions;
  readonly #fetches = new Set<ConsumerMessages>();
  readonly #stop = new AbortController();

  constructor(options: TaskPoolOptions) {
    this.handler = options.handler;
    this.priority = options.priority;
    this.capabilities = options.capabilities ?? [];
    this.pool = poolLabel(this.handler, this.capabilities);
    this.rank = PRIORITIES.indexOf(options.priority);
    this.consumerName = options.consumerName;
    this.heartbeat = options.heartbeat;
    this.#consumer = options.consumer;
    this.#options = options;
  }

  fetch(count: number): void {
    this.outstanding++;
    this.requested += count;
    void this.#fetch(count);
  }

  /** How many more tasks are worth a fetch: the known waiting ones no open fetch asked for. */
  get limit(): number {
    return Math.max(0, this.#waiting - this.requested);
  }

  /** Tasks wait that no open fetch of this worker asked for. */
  get hungry(): boolean {
    return !this.paused && !this.#stop.signal.aborted && this.limit > 0;
  }

  /** The doorbell: a task was published on the lane's subject. */
  ring(): void {
    this.signal({ count: 1 });
  }

  /**
   * Tasks are waiting in this lane: `count` more were published, or `backlog` is what the
   * server reports. The lane fetches that many, no more: a fetch asking for more would hold
   * free slots until it expires.
   */
  signal(news: { count?: number; backlog?: number } = { count: 1 }): void {
    if (this.paused || this.#stop.signal.aborted) return;
    this.#waiting = news.backlog !== undefined ? Math.max(this.#waiting, news.backlog) : this.#waiting + (news.count ?? 1);
    if (this.hungry) this.#options.hooks.onResume(this);
  }

  /**
   * Asks the server every `intervalMs`, while the lane is idle, whether tasks wait in it that no
   * doorbell announced: a backlog (`num_pending`: tasks queued before this worker started or
   * subscribed), or a redelivery that may be due, which the server counts nowhere. The lane
   * sweeps for one (a one-task fetch; a redelivered task it gets asks for the next) when the
   * consumer has more tasks out than this worker holds and either this is the worker's first
   * look (tasks handed back or orphaned before it started) or the lane's last delivery is older
   * than ack_wait (a task of a worker that died is due; while workers pull the lane, their
   * fetches take such tasks first) — at most once per half ack_wait: a sweep that finds nothing
   * holds its slot until the fetch expires.
   */
  watch(intervalMs: number): void {
    const ackWaitMs = this.heartbeat.ackWaitMs;
    let first = true;
    const check = () => {
      if (this.hungry || this.outstanding > 0 || this.paused) return;
      const firstLook = first;
      first = false;
      this.#consumer.info(false).then(
        (info) => {
          if (info.num_pending > 0) return this.signal({ backlog: info.num_pending });
          const now = Date.now();
          const quiet = now - timestampMs(info.delivered.last_active) >= ackWaitMs;
          if (info.num_ack_pending > this.heartbeat.size && (firstLook || quiet) && now - this.#sweptAt >= ackWaitMs / 2) {
            this.#sweptAt = now;
            this.signal({ backlog: 1 });
          }
        },
        (thrown: unknown) => this.#options.log.debug({ err: toError(thrown), handler: this.handler, pool: this.pool, priority: this.priority }, "lane backlog check failed"),
      );
    };
    if (this.#watch) return;
    // At once too: tasks may have waited in this lane since before the worker started.
    check();
    this.#watch = setInterval(check, intervalMs);
    this.#watch.unref();
  }

  /** Ends every open fetch; messages already buffered are still handed over (and nak'ed by a draining pipeline). */
  stop(): void {
    clearInterval(this.#watch);
    this.#stop.abort();
    for (const messages of this.#fetches) messages.stop();
  }

  async #fetch(count: number): Promise<void> {
    const { hooks, expiresMs, log } = this.#options;
    let received = 0;
    let failure: Error | undefined;
    let messages: ConsumerMessages | undefined;
    try {
      if (this.#stop.signal.aborted) return;
      messages = await this.#consumer.fetch({ max_messages: count, expires: expiresMs });
      this.#fetches.add(messages);
      // stop() may have run while fetch() was being set up.
      if (this.#stop.signal.aborted) messages.stop();
      for await (const msg of messages) {
        received++;
        this.requested--;
        // What is still undelivered in the consumer after this one (the server's count): a backlog.
        // Redeliveries are not in that count: after one, ask for one more.
        this.#waiting = Math.max(this.#waiting - 1, msg.info.pending) + (msg.info.redelivered ? 1 : 0);
        hooks.onMessage(this, msg);
      }
    } catch (thrown) {
      failure = toError(thrown);
    } finally {
      if (messages) this.#fetches.delete(messages);
      const unfilled = count - received;
      this.outstanding--;
      this.requested -= unfilled;
      // Whatever it did not get was taken by another worker (or never was there): forget it.
      if (unfilled > 0 && !failure) this.#waiting = Math.max(0, this.#waiting - unfilled);
      hooks.onFetchEnd(this, unfilled);
    }
    if (failure && !this.#stop.signal.aborted) {
      log.warn({ err: failure, handler: this.handler, pool: this.pool, priority: this.priority }, "task fetch failed; pausing this pool");
      void this.#pause();
    }
  }

  async #pause(): Promise<void> {
    if (this.paused) return;
    this.paused = true;
    const { recover, hooks, log } = this.#options;
    while (await abortableDelay(FETCH_ERROR_PAUSE_MS, this.#stop.signal)) {
      try {
        this.#consumer = await recover();
        break;
      } catch (thrown) {
        log.warn({ err: toError(thrown), handler: this.handler, pool: this.pool, priority: this.priority }, "task consumer still unavailable");
      }
    }
    this.paused = false;
    if (!this.#stop.signal.aborted) hooks.onResume(this);
  }
}
