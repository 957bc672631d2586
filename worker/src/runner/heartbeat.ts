import type { ConsumerInfo, JsMsg } from "@nats-io/jetstream";
import { millis } from "@nats-io/nats-core";

/**
 * Keeps running tasks from being redelivered: `working()` on every tracked message about three
 * times per ack_wait. The interval is derived from the consumer's own ack_wait (read back from
 * the server), never configured beside it, so the two cannot drift apart.
 *
 * One timer per pool rather than one per task: a tick that finds nothing to do costs nothing,
 * and the benchmark path (thousands of short tasks a second) creates no timers here at all.
 * Tracked at any point, a message gets its first working() within ack_wait/3.
 */
export class Heartbeat {
  readonly intervalMs: number;
  /** The consumer's ack_wait this heartbeat beats against. */
  readonly ackWaitMs: number;
  readonly #tracked = new Set<JsMsg>();
  #timer: NodeJS.Timeout | undefined;

  constructor(ackWaitMs: number) {
    this.ackWaitMs = ackWaitMs;
    this.intervalMs = Math.max(50, Math.floor(ackWaitMs / 3));
  }

  static fromConsumerInfo(info: ConsumerInfo): Heartbeat {
    return new Heartbeat(millis(info.config.ack_wait ?? 30_000_000_000));
  }

  get size(): number {
    return this.#tracked.size;
  }

  track(msg: JsMsg): void {
    this.#tracked.add(msg);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#beat(), this.intervalMs);
      // The process may exit while tasks run (a forced shutdown); the ticker must not hold it.
      this.#timer.unref();
    }
  }

  untrack(msg: JsMsg): void {
    this.#tracked.delete(msg);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#tracked.clear();
  }

  #beat(): void {
    for (const msg of this.#tracked) {
      try {
        msg.working();
      } catch {
        // The connection is closed or closing; the task will be redelivered anyway and the
        // worker is shutting down, so there is nothing better to do with this error.
      }
    }
  }
}
