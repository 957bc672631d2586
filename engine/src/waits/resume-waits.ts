import { FmError, type ExecutionStatus } from "@flowmonkey/shared";
import { advance, isTerminal } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import { resumeStep, type ResumeCause } from "../execution/waits.js";
import type { ApplyEnv } from "../results/apply-result.js";
import { transition, type Committed } from "../store/transition.js";
import type { Relay } from "../outbox/relay.js";
import { findWaitsByTokens, type DueWait } from "../store/wait-tokens.js";
import { tenantsOf } from "../store/counts.js";

export type WaitToResume = DueWait & {
  cause: ResumeCause;
  /** The FM_EVENTS sequence of the event that resumes it (reason "event"): a later wait of the step is not resumed by it again. */
  eventSeq?: number;
};

export type ResumeOutcome =
  | { token: string; resumed: true; executionId: string; stepId: string; status: ExecutionStatus }
  /** The step no longer waits on this token (resumed by someone else first, or its execution ended). */
  | { token: string; resumed: false };

/**
 * Resumes waiting steps in one transaction: each runs again as a new attempt carrying the
 * cause. The token row is only the index; the execution row decides — a token whose step
 * does not wait on it any more (resumed by another replica a moment ago, by an event and a
 * timer at once) resumes nothing and its stale row is dropped.
 */
export async function resumeWaits(env: Pick<ApplyEnv, "db" | "registry" | "subjects" | "breakers" | "rates" | "vault">, waits: WaitToResume[]): Promise<Committed<ResumeOutcome[]>> {
  const out = new Changes();
  return transition(
    env.db,
    waits.map((w) => w.executionId),
    async (executions) => {
      const now = new Date();
      const envNow = { subjects: env.subjects, now, breakers: env.breakers, rates: env.rates };
      const done = new Set<string>();
      const outcomes: ResumeOutcome[] = [];
      for (const w of waits) {
        const exec = executions.get(w.executionId);
        const step = exec?.steps[w.stepId];
        const current = step?.status === "waiting" && step.wait?.resumeToken === w.token && step.attempts === w.attempt;
        if (!exec || isTerminal(exec.status) || !current || done.has(w.token)) {
          // A stale row goes; a row of a later wait that reused the token stays (its own attempt is newer).
          if (!done.has(w.token) && !(step?.status === "waiting" && step.wait?.resumeToken === w.token)) out.of(w.executionId).waitsEnded.push(w.token);
          done.add(w.token);
          outcomes.push({ token: w.token, resumed: false });
          continue;
        }
        done.add(w.token);
        const flow = await env.registry.get(exec.flowId, exec.flowVersion);
        await resumeStep(exec, flow, w.stepId, w.cause, out, envNow, w.eventSeq);
        await advance(exec, flow, out, envNow);
        out.updated.set(exec.id, exec);
        outcomes.push({ token: w.token, resumed: true, executionId: exec.id, stepId: w.stepId, status: exec.status });
      }
      return outcomes;
    },
    out,
    env.vault,
  );
}

export interface ResumeRequestItem {
  token: string;
  payload: unknown;
  /** Resume only a step of this tenant's executions (a tenant's API token); another's token is "not found". */
  tenantId?: string | undefined;
  resolve(reply: { executionId: string; stepId: string; status: ExecutionStatus }): void;
  reject(err: Error): void;
}

/**
 * `fm.api.resume` requests, group-committed: the requests that arrive while a batch is in its
 * transaction form the next one (one token lookup and one transaction per batch). Each request
 * is answered once its resume is committed — and published, by the relay, right after.
 */
export function createResumeProcessor(env: Parameters<typeof resumeWaits>[0] & { relay: Relay }) {
  return async (items: ResumeRequestItem[]): Promise<void> => {
    const found = await findWaitsByTokens(env.db, items.map((i) => i.token));
    const confined = items.filter((i) => i.tenantId !== undefined);
    const tenants = confined.length > 0 ? await tenantsOf(env.db, confined.flatMap((i) => found.get(i.token)?.executionId ?? [])) : undefined;
    const due: WaitToResume[] = [];
    for (const item of items) {
      const wait = found.get(item.token);
      found.delete(item.token);
      if (wait && item.tenantId !== undefined && tenants?.get(wait.executionId) !== item.tenantId) continue;
      if (wait) due.push({ ...wait, cause: { reason: "token", ...(item.payload === undefined ? {} : { payload: item.payload }) } });
    }
    const outcomes = new Map<string, ResumeOutcome>();
    if (due.length > 0) {
      const committed = await resumeWaits(env, due);
      env.relay.afterCommit(committed);
      for (const o of committed.value) outcomes.set(o.token, o);
    }
    for (const item of items) {
      const o = outcomes.get(item.token);
      // The same token twice in one batch: the first request resumes it, the second finds it gone.
      if (o?.resumed) {
        outcomes.delete(item.token);
        item.resolve({ executionId: o.executionId, stepId: o.stepId, status: o.status });
      } else {
        item.reject(new FmError("RESUME_TOKEN_NOT_FOUND", `no step waits on resume token ${JSON.stringify(item.token)} (unknown, already resumed, or its execution ended)`));
      }
    }
  };
}
