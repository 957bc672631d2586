import { abortableDelay, toError, type Logger } from "@flowmonkey/shared";
import type { Relay } from "../outbox/relay.js";
import { claimStaleCatchUps, findExpiredWaits } from "../store/wait-tokens.js";
import { DEFAULT_CATCH_UP_MAX_BACKOFF_MS, type EventCatchUp } from "./event-catch-up.js";
import { resumeWaits } from "./resume-waits.js";

const PAGE = 500;
/** Stale catch-ups claimed at once: each page is one scan per event name. */
const CATCH_UP_PAGE = 100;
/** The shortest backoff of a failed catch-up, whatever the grace: a grace of 0 must not make the sweep spin. */
const MIN_CATCH_UP_BACKOFF_MS = 1000;

export interface StaleCatchUpSweep {
  /** The catch-up the result path runs after its commits. */
  run: EventCatchUp;
  /** How long after it was recorded a wait not caught up yet is taken; also the first backoff after a failed catch-up (at least 1 s). */
  graceMs: number;
  /** @default DEFAULT_CATCH_UP_MAX_BACKOFF_MS */
  maxBackoffMs?: number;
}

/**
 * Resumes waits whose `waitUntil` has passed (their step runs with `resume.reason` "timeout" and
 * takes its timeout path). The timers are rows, so they survive engine restarts, and a partial
 * index keeps the poll cheap however many executions wait. Replicas may poll at once: a wait is
 * resumed once (see resumeWaits).
 *
 * On the same tick it sweeps event waits whose catch-up (event-catch-up.ts) has not completed
 * `graceMs` after they were recorded — the engine that recorded them died before running it, or
 * it failed — and runs it for them. A claim on the row (SKIP LOCKED, then a not-before time that
 * starts at the grace (at least 1 s) and doubles with each claim up to `maxBackoffMs`) gives each
 * such wait to one replica at a time and bounds how often a catch-up that keeps failing is retried.
 */
export function startWaitTimer(env: Parameters<typeof resumeWaits>[0] & { relay: Relay; log: Logger; intervalMs: number; catchUp?: StaleCatchUpSweep | undefined }): {
  stop(): Promise<void>;
  fireDue(): Promise<number>;
  catchUpStale(): Promise<number>;
} {
  const abort = new AbortController();

  async function fireDue(): Promise<number> {
    let fired = 0;
    for (;;) {
      const due = await findExpiredWaits(env.db, PAGE);
      if (due.length === 0) return fired;
      const committed = await resumeWaits(env, due.map((w) => ({ ...w, cause: { reason: "timeout" as const } })));
      env.relay.afterCommit(committed);
      fired += committed.value.filter((o) => o.resumed).length;
      if (due.length < PAGE) return fired;
    }
  }

  /** Runs the catch-up of every wait left not caught up past the grace; resolves to how many it resumed. */
  async function catchUpStale(): Promise<number> {
    const sweep = env.catchUp;
    if (!sweep) return 0;
    let resumed = 0;
    for (;;) {
      const claimed = await claimStaleCatchUps(env.db, {
        graceMs: sweep.graceMs,
        backoffMs: Math.max(sweep.graceMs, MIN_CATCH_UP_BACKOFF_MS),
        maxBackoffMs: sweep.maxBackoffMs ?? DEFAULT_CATCH_UP_MAX_BACKOFF_MS,
        limit: CATCH_UP_PAGE,
      });
      if (claimed.length === 0) return resumed;
      env.log.info({ waits: claimed.length, tries: Math.max(...claimed.map((w) => w.tries)) }, "catching up event waits their engine did not (it stopped or its catch-up failed)");
      resumed += await sweep.run(
        claimed.map(({ token, executionId, stepId, attempt, region, eventName, eventFilter, afterSeq }) => ({
          token,
          executionId,
          stepId,
          attempt,
          region,
          eventName,
          ...(eventFilter ? { eventFilter } : {}),
          ...(afterSeq ? { afterSeq } : {}),
        })),
      );
      if (claimed.length < CATCH_UP_PAGE) return resumed;
    }
  }

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await abortableDelay(env.intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      await fireDue().catch((err: unknown) => env.log.warn({ err: toError(err) }, "wait timer failed; trying again"));
      if (abort.signal.aborted) break;
      await catchUpStale().catch((err: unknown) => env.log.warn({ err: toError(err) }, "event catch-up sweep failed; trying again"));
    }
  })();

  return {
    fireDue,
    catchUpStale,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
