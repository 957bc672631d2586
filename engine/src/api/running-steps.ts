import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { Progress, type Subjects } from "@flowmonkey/shared";

/** Steps remembered at most; the oldest are forgotten first (a view then says "dispatched"). */
const MAX_STEPS = 50_000;

/**
 * Which dispatched steps a worker has started: the latest message of each step's progress
 * subject (`fm.progress.~<region>.<executionId>.<stepId>`; keyed by its last two tokens), where a worker announces a task as it starts
 * it (percent 0, "started") and reports progress after. Kept in memory, unparsed — nothing is
 * written and nothing decoded per step; a view decodes the one it needs. Every engine replica
 * keeps its own; after a restart a step shows "running" again with its next progress message.
 */
export function watchRunningSteps(nc: NatsConnection, subjects: Subjects): { attemptStarted(executionId: string, stepId: string): number | undefined; stop(): void } {
  const latest = new Map<string, Uint8Array>();
  const sub: Subscription = nc.subscribe(subjects.progressAll, {
    callback: (err, msg) => {
      if (err) return;
      const key = msg.subject.slice(msg.subject.lastIndexOf(".", msg.subject.lastIndexOf(".") - 1) + 1);
      latest.delete(key);
      latest.set(key, msg.data);
      if (latest.size > MAX_STEPS) latest.delete(latest.keys().next().value!);
    },
  });
  return {
    /** The attempt of the step a worker last reported on, if any. */
    attemptStarted(executionId, stepId) {
      const data = latest.get(`${executionId}.${stepId}`);
      if (!data) return undefined;
      try {
        const parsed = Progress.safeParse(JSON.parse(new TextDecoder().decode(data)));
        return parsed.success ? parsed.data.attempt : undefined;
      } catch {
        return undefined;
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
