/** How much a sandboxed run may send: a hostile handler cannot flood the worker's event loop or the mesh. */
export interface BudgetLimits {
  /** Messages of any kind per second. @default 500 */
  perSecond?: number;
  /** Events emitted in the whole run. @default 100 */
  events?: number;
  /** Log lines in the whole run. @default 200 */
  logs?: number;
}

/**
 * Counts a run's messages in one-second windows plus whole-run totals for events and logs.
 * Pure: the caller kills the sandbox when take() answers with a reason.
 */
export class MessageBudget {
  readonly #perSecond: number;
  readonly #totals: Record<string, number>;
  readonly #used = new Map<string, number>();
  #windowStart: number;
  #inWindow = 0;

  constructor(limits: BudgetLimits = {}, private readonly now: () => number = Date.now) {
    this.#perSecond = limits.perSecond ?? 500;
    this.#totals = { "events.emit": limits.events ?? 100, log: limits.logs ?? 200 };
    this.#windowStart = now();
  }

  /** Counts one message of `kind`; returns why the run is over budget, or undefined. */
  take(kind: string): string | undefined {
    const t = this.now();
    if (t - this.#windowStart >= 1000) {
      this.#windowStart = t;
      this.#inWindow = 0;
    }
    if (++this.#inWindow > this.#perSecond) return `more than ${this.#perSecond} messages in a second`;
    const total = this.#totals[kind];
    if (total === undefined) return undefined;
    const used = (this.#used.get(kind) ?? 0) + 1;
    this.#used.set(kind, used);
    return used > total ? `more than ${total} ${kind} messages in one run` : undefined;
  }
}
