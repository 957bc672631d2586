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

/** Wait after a failed fetch before the next one, so a missing stream or a broken link is not a hot loop. */
export const FETCH_ERROR_PAUSE_MS = 1000;

/**
 * The pull side of one (region, handler) pool: the worker's share of the durable consumer that
 * every worker of the pool fetches from. It fetches exactly as many tasks as it is told to, never
 * more, and reports each delivery and each fetch's end; slot accounting lives in the puller.
 */
export class TaskPool implements PoolView {
  readonly handler: string;
  readonly priority: Priority;
  readonly capabilities: readonly string[];
  /** `handler` or `handler~cap…`: the pool in logs. */
  readonly pool: string;
  /** 0 for high: the puller serves lower ranks first. */
  readonly rank: number;
  readonly heartbeat: Heartbeat;
  outstanding = 0;
  requested = 0;
  hungry = false;
  paused = false;
  /** Only the normal lane keeps an idle probe open; see PoolView.probes. */
  readonly probes: boolean;
  /** A lane without probes: tasks known to wait (signals, the backlog check), so it asks for no more than that. */
  #known = 0;
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
    this.probes = options.priority === "normal";
    this.heartbeat = options.heartbeat;
    this.#consumer = options.consumer;
    this.#options = options;
  }

  fetch(count: number): void {
    this.outstanding++;
    this.requested += count;
    void this.#fetch(count);
  }

  /** For a lane without probes: how many more tasks are worth a fetch (undefined: no cap). */
  get limit(): number | undefined {
    return this.probes ? undefined : Math.max(0, this.#known - this.requested);
  }

  /**
   * Tasks are waiting in this lane: `count` more were published (a high task seen on its
   * subject), or `backlog` is what the server reports. The lane fetches that many, no more:
   * a fetch asking for more would hold free slots until it expires.
   */
  signal(news: { count?: number; backlog?: number } = { count: 1 }): void {
    if (this.paused || this.#stop.signal.aborted) return;
    this.#known = news.backlog !== undefined ? Math.max(this.#known, news.backlog) : this.#known + (news.count ?? 1);
    if (this.#known - this.requested <= 0) return;
    this.hungry = true;
    this.#options.hooks.onResume(this);
  }

  /**
   * For a lane without an idle probe: asks the server every `intervalMs` whether tasks wait in
   * it (redeliveries, tasks published before this worker started) and signals if so.
   */
  watch(intervalMs: number): void {
    const check = () => {
      if (this.hungry || this.outstanding > 0 || this.paused) return;
      this.#consumer.info(false).then(
        (info) => {
          if (info.num_pending > 0) this.signal({ backlog: info.num_pending });
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
        hooks.onMessage(this, msg);
      }
    } catch (thrown) {
      failure = toError(thrown);
    } finally {
      if (messages) this.#fetches.delete(messages);
      const unfilled = count - received;
      this.outstanding--;
      this.requested -= unfilled;
      if (!this.probes) {
        // Whatever it did not get was taken by another worker (or is not there): forget it.
        this.#known = Math.max(0, this.#known - count);
        if (!this.#stop.signal.aborted) this.hungry = this.#known - this.requested > 0;
      } else if (!this.#stop.signal.aborted) this.hungry = failure === undefined && unfilled === 0;
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
