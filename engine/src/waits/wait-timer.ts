import { abortableDelay, toError, type Logger } from "@flowmonkey/shared";
import type { Relay } from "../outbox/relay.js";
import { findExpiredWaits } from "../store/wait-tokens.js";
import { resumeWaits } from "./resume-waits.js";

const PAGE = 500;

/**
 * Resumes waits whose `waitUntil` has passed (their step runs with `resume.reason` "timeout" and
 * takes its timeout path). The timers are rows, so they survive engine restarts, and a partial
 * index keeps the poll cheap however many executions wait. Replicas may poll at once: a wait is
 * resumed once (see resumeWaits).
 */
export function startWaitTimer(env: Parameters<typeof resumeWaits>[0] & { relay: Relay; log: Logger; intervalMs: number }): {
  stop(): Promise<void>;
  fireDue(): Promise<number>;
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

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await abortableDelay(env.intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      await fireDue().catch((err: unknown) => env.log.warn({ err: toError(err) }, "wait timer failed; trying again"));
    }
  })();

  return {
    fireDue,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
