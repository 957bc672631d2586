import type { Failure, TaskOutcome } from "@flowmonkey/shared";

export interface CircuitOptions {
  /** Results of a lane considered: those of the last `windowMs`. */
  windowMs: number;
  /** Fewer results than this in the window never open the circuit. */
  minResults: number;
  /** Share of infrastructure failures in the window that opens it. */
  failureRatio: number;
  /** How long an open circuit holds new tasks of its lane before one probe may go. */
  coolDownMs: number;
}

export const DEFAULT_CIRCUIT_OPTIONS: CircuitOptions = { windowMs: 30_000, minResults: 20, failureRatio: 0.5, coolDownMs: 30_000 };

export type CircuitState = "closed" | "open" | "half-open";

export interface CircuitView {
  /** `<region>/<handler>` */
  lane: string;
  state: CircuitState;
  /** Results and infrastructure failures in the current window. */
  results: number;
  failures: number;
  openedAt?: string;
  /** While open: when a probe may go. */
  openUntil?: string;
}

/**
 * Codes that say the mesh could not run the task, not that the handler decided against it: a
 * handler type whose tasks keep ending like this in a region is paused there for a while
 * instead of burning every execution's attempts.
 */
const INFRASTRUCTURE_CODES = new Set(["TASK_TIMEOUT", "DELIVERIES_EXHAUSTED", "WORKER_SHUTDOWN", "UNAVAILABLE", "HANDLER_NOT_FOUND"]);

export function isInfrastructureFailure(outcome: TaskOutcome, failure?: Failure): boolean {
  if (outcome === "error") return true;
  return outcome === "failure" && failure !== undefined && INFRASTRUCTURE_CODES.has(failure.code);
}

interface Lane {
  state: CircuitState;
  /** Result times and whether each was an infrastructure failure, oldest first, within the window. */
  window: Array<{ at: number; failed: boolean }>;
  openedAt?: number;
  openUntil?: number;
  /** Open or half-open: the one probe task has been picked. */
  probing: boolean;
}

/**
 * One circuit per lane (region + handler type), in this engine replica's memory: each replica
 * judges from the results it applies (replicas share the result stream, so each sees a fair
 * sample). closed → open when infrastructure failures in the window reach the ratio → after the
 * cool-down, half-open: one task goes as a probe while the others keep waiting → its success
 * closes the circuit, an infrastructure failure opens it again.
 */
export class CircuitBreakers {
  readonly #lanes = new Map<string, Lane>();
  readonly #options: CircuitOptions;
  readonly #now: () => number;

  constructor(options: Partial<CircuitOptions> = {}, now: () => number = Date.now) {
    this.#options = { ...DEFAULT_CIRCUIT_OPTIONS, ...options };
    this.#now = now;
  }

  /**
   * How long to hold a new task of this lane (0: publish now). The first task held by an open
   * circuit is its probe, published when the cool-down ends; the others are held a cool-down
   * longer, by when the probe's result has closed the circuit or opened it again. (A held task
   * keeps the time it was given: it is not held again if the probe fails.)
   */
  holdFor(lane: string): number {
    const l = this.#lanes.get(lane);
    if (!l || l.state === "closed") return 0;
    const now = this.#now();
    if (l.state === "open" && now >= l.openUntil!) l.state = "half-open";
    const probeAt = l.state === "open" ? l.openUntil! : now;
    if (!l.probing) {
      l.probing = true;
      return probeAt - now;
    }
    return probeAt + this.#options.coolDownMs - now;
  }

  record(lane: string, outcome: TaskOutcome, failure?: Failure): void {
    const failed = isInfrastructureFailure(outcome, failure);
    const now = this.#now();
    let l = this.#lanes.get(lane);
    if (!l) {
      if (!failed) return; // a healthy lane needs no bookkeeping until something goes wrong
      this.#lanes.set(lane, (l = { state: "closed", window: [], probing: false }));
    }
    if (l.state === "half-open" || (l.state === "open" && now >= l.openUntil!)) {
      if (failed) this.#open(l, now);
      else this.#lanes.delete(lane);
      return;
    }
    if (l.state === "open") return;
    l.window.push({ at: now, failed });
    while (l.window.length > 0 && l.window[0]!.at <= now - this.#options.windowMs) l.window.shift();
    const failures = l.window.filter((r) => r.failed).length;
    if (failures === 0) {
      this.#lanes.delete(lane);
      return;
    }
    if (l.window.length >= this.#options.minResults && failures / l.window.length >= this.#options.failureRatio) this.#open(l, now);
  }

  #open(l: Lane, now: number): void {
    l.state = "open";
    l.openedAt = now;
    l.openUntil = now + this.#options.coolDownMs;
    l.probing = false;
    l.window = [];
  }

  /** Every lane that is not plainly healthy. */
  list(): CircuitView[] {
    return [...this.#lanes.entries()].map(([lane, l]) => {
      const failures = l.window.filter((r) => r.failed).length;
      return {
        lane,
        state: l.state === "open" && this.#now() >= l.openUntil! ? "half-open" : l.state,
        results: l.window.length,
        failures,
        ...(l.openedAt ? { openedAt: new Date(l.openedAt).toISOString() } : {}),
        ...(l.state === "open" ? { openUntil: new Date(l.openUntil!).toISOString() } : {}),
      };
    });
  }
}
