/** How much a sandboxed run may send: a hostile handler cannot flood the worker's event loop, its memory or the mesh. */
export interface BudgetLimits {
  /** Messages of any kind per second (stray error reports included). @default 500 */
  perSecond?: number;
  /** Bytes of messages of any kind per second. @default 16 MiB */
  bytesPerSecond?: number;
  /** Bytes of context writes (set, merge, delete) in the whole run: the worker holds them until the result. @default 32 MiB */
  contextBytes?: number;
  /** Requests (context reads, checkpoints, events, fetches) waiting for the worker's answer at once. @default 128 */
  inFlight?: number;
  /** Bytes of those requests (a checkpoint's state, an event's data) the worker holds while it serves them. @default 16 MiB */
  inFlightBytes?: number;
  /** Events emitted in the whole run. @default 100 */
  events?: number;
  /** Log lines in the whole run. @default 200 */
  logs?: number;
  /** Stray error reports (unhandled rejections, throwing timers) in the whole run. @default 100 */
  strays?: number;
}

export const BUDGET_DEFAULTS = {
  perSecond: 500,
  bytesPerSecond: 16 << 20,
  contextBytes: 32 << 20,
  inFlight: 128,
  inFlightBytes: 16 << 20,
  events: 100,
  logs: 200,
  strays: 100,
} as const satisfies Required<BudgetLimits>;

const CONTEXT_WRITES = new Set(["context.set", "context.merge", "context.delete"]);
const mib = (bytes: number) => `${Math.round((bytes / (1 << 20)) * 10) / 10} MiB`;

/**
 * Counts a run's messages and bytes in one-second windows, whole-run totals for events, logs,
 * stray errors and context-write bytes, and the requests in flight. Pure: the caller kills the
 * sandbox when take() answers with a reason.
 */
export class MessageBudget {
  readonly #limits: Required<BudgetLimits>;
  readonly #totals: Record<string, number>;
  readonly #used = new Map<string, number>();
  #windowStart: number;
  #inWindow = 0;
  #bytesInWindow = 0;
  #contextBytes = 0;
  #inFlight = 0;
  #inFlightBytes = 0;

  constructor(limits: BudgetLimits = {}, private readonly now: () => number = Date.now) {
    this.#limits = { ...BUDGET_DEFAULTS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) };
    this.#totals = { "events.emit": this.#limits.events, log: this.#limits.logs, stray: this.#limits.strays };
    this.#windowStart = now();
  }

  /** Counts one message of `kind`, `bytes` long; returns why the run is over budget, or undefined. */
  take(kind: string, bytes = 0): string | undefined {
    const t = this.now();
    if (t - this.#windowStart >= 1000) {
      this.#windowStart = t;
      this.#inWindow = 0;
      this.#bytesInWindow = 0;
    }
    if (++this.#inWindow > this.#limits.perSecond) return `more than ${this.#limits.perSecond} messages in a second`;
    this.#bytesInWindow += bytes;
    if (this.#bytesInWindow > this.#limits.bytesPerSecond) return `more than ${mib(this.#limits.bytesPerSecond)} of messages in a second`;
    if (CONTEXT_WRITES.has(kind)) {
      this.#contextBytes += bytes;
      if (this.#contextBytes > this.#limits.contextBytes) return `more than ${mib(this.#limits.contextBytes)} of context writes in one run`;
    }
    const total = this.#totals[kind];
    if (total === undefined) return undefined;
    const used = (this.#used.get(kind) ?? 0) + 1;
    this.#used.set(kind, used);
    return used > total ? `more than ${total} ${kind} messages in one run` : undefined;
  }

  /** A request of `bytes` starts waiting for the worker's answer; returns why that is too much, or undefined. */
  open(bytes = 0): string | undefined {
    this.#inFlightBytes += bytes;
    if (++this.#inFlight > this.#limits.inFlight) return `more than ${this.#limits.inFlight} requests in flight`;
    return this.#inFlightBytes > this.#limits.inFlightBytes ? `more than ${mib(this.#limits.inFlightBytes)} of requests in flight` : undefined;
  }

  /** A request of `bytes` was answered. */
  close(bytes = 0): void {
    this.#inFlight--;
    this.#inFlightBytes -= bytes;
  }
}
