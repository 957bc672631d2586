import type { JsMsg } from "@nats-io/jetstream";
import type { Heartbeat } from "./heartbeat.js";
import { ackConfirmed, nakQuietly } from "./publish-result.js";

/**
 * The copies of one attempt that JetStream delivered again while this worker was still running
 * it. That happens when the task's in-progress acks did not reach the server for a whole
 * ack_wait (a stalled event loop, a reconnect, a stream leader election) and the server handed
 * the task to this same worker once more. Running it a second time, concurrently, would only
 * repeat its side effects; instead each copy is held, heartbeated like the original, and
 * settled the way the original is: acked once the result is stored, given back otherwise.
 */
export class Redeliveries {
  readonly #copies: Array<{ msg: JsMsg; heartbeat: Heartbeat }> = [];
  readonly #settled: Promise<void>;
  #resolve!: () => void;

  constructor() {
    this.#settled = new Promise((resolve) => (this.#resolve = resolve));
  }

  get count(): number {
    return this.#copies.length;
  }

  /** Holds a copy until the original settles; resolves then (the copy's slot is freed with it). */
  hold(msg: JsMsg, heartbeat: Heartbeat): Promise<void> {
    heartbeat.track(msg);
    this.#copies.push({ msg, heartbeat });
    return this.#settled;
  }

  /**
   * The original's result is stored (`ack`) or the task goes back (`nak`): every copy follows.
   * Acks are confirmed before the copies' slots are freed, as the original's are.
   */
  async settle(how: "ack" | "nak"): Promise<void> {
    const copies = this.#copies.splice(0);
    for (const { msg, heartbeat } of copies) heartbeat.untrack(msg);
    if (how === "nak") for (const { msg } of copies) nakQuietly(msg);
    else await Promise.all(copies.map(({ msg }) => ackConfirmed(msg)));
    this.#resolve();
  }
}
