/**
 * Load generator shared by the ceiling and the mesh: starts `count` flows and waits for each to
 * complete, recording start → completion latency on one clock (this process's).
 *
 *  - `window` mode (closed loop): at most `window` flows in flight; measures the top throughput.
 *  - `rate` mode (open loop): starts at a fixed rate whatever completes, so latency is what a
 *    flow sees at that offered load (queueing included when the system cannot keep up).
 *
 * Either way at most `publishInflight` start publishes wait for their JetStream ack at once.
 */
import { round, summarize, type LatencySummary, wallNow } from "./stats.js";

export interface FlowSystem {
  /** Starts flow `id` (a token); resolves when the start was accepted (publish acked). */
  start(id: string): Promise<unknown>;
  /** Set by the driver: the system calls it once per flow when it finishes. */
  onDone: (id: string, ok: boolean, why?: string) => void;
}

export type LoadMode = { kind: "window"; window: number } | { kind: "rate"; perSecond: number; maxInflight: number };

export interface PhaseOptions {
  label: string;
  idPrefix: string;
  count: number;
  mode: LoadMode;
  publishInflight: number;
  timeoutMs: number;
  stepsPerFlow: number;
}

export interface PhaseResult {
  label: string;
  mode: LoadMode;
  flows: number;
  wallMs: number;
  flowsPerSec: number;
  stepsPerSec: number;
  /** Achieved start rate (rate mode: to compare with the target). */
  startsPerSec: number;
  flowLatencyMs: LatencySummary | undefined;
  ids: string[];
}

export function runPhase(system: FlowSystem, opts: PhaseOptions): Promise<PhaseResult> {
  const { count, mode } = opts;
  const ids = Array.from({ length: count }, (_, i) => `${opts.idPrefix}-${i}`);
  const startedAt = new Map<string, number>();
  const latencies = new Float64Array(count);
  let launched = 0;
  let done = 0;
  let pubs = 0;
  let firstStart = 0;
  let lastStart = 0;
  let timer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let finished = false;

  return new Promise<PhaseResult>((resolve, reject) => {
    const fail = (err: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      system.onDone = () => undefined;
      reject(err);
    };

    const pump = () => {
      if (finished) return;
      const now = wallNow();
      let due = count;
      if (mode.kind === "rate") {
        due = launched === 0 ? 1 : Math.min(count, Math.floor(((now - firstStart) * mode.perSecond) / 1000) + 1);
      }
      const cap = mode.kind === "window" ? mode.window : mode.maxInflight;
      while (launched < due && launched - done < cap && pubs < opts.publishInflight) {
        const id = ids[launched++] as string;
        const t = wallNow();
        if (launched === 1) firstStart = t;
        lastStart = t;
        startedAt.set(id, t);
        pubs++;
        system.start(id).then(
          () => {
            pubs--;
            if (mode.kind === "window") pump();
          },
          (err: unknown) => fail(new Error(`${opts.label}: starting flow ${id} failed: ${(err as Error).message}`, { cause: err })),
        );
      }
      if (mode.kind === "rate" && launched < count) {
        clearTimeout(timer);
        timer = setTimeout(pump, 1);
      }
    };

    system.onDone = (id, ok, why) => {
      const t0 = startedAt.get(id);
      if (t0 === undefined) return; // not this phase's flow (or a duplicate event)
      startedAt.delete(id);
      if (!ok) return fail(new Error(`${opts.label}: flow ${id} did not complete: ${why ?? "failed"}`));
      latencies[done++] = wallNow() - t0;
      if (done === count) {
        finished = true;
        clearTimeout(timer);
        clearTimeout(deadline);
        const wallMs = wallNow() - firstStart;
        resolve({
          label: opts.label,
          mode,
          flows: count,
          wallMs: round(wallMs, 1),
          flowsPerSec: round((count * 1000) / wallMs, 1),
          stepsPerSec: round((count * opts.stepsPerFlow * 1000) / wallMs, 1),
          startsPerSec: round(count > 1 ? ((count - 1) * 1000) / Math.max(1e-3, lastStart - firstStart) : 0, 1),
          flowLatencyMs: summarize(latencies),
          ids,
        });
        return;
      }
      if (mode.kind === "window") pump();
    };

    deadline = setTimeout(
      () =>
        fail(
          new Error(
            `${opts.label}: only ${done} of ${count} flows completed within ${opts.timeoutMs} ms ` +
              `(${launched} started, ${pubs} start publishes unacknowledged); see the component logs below`,
          ),
        ),
      opts.timeoutMs,
    );
    pump();
  });
}
