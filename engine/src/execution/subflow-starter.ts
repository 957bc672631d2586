import { ENGINE_WORKER_ID, FmError, toError, type Logger, type TaskResult } from "@flowmonkey/shared";
import { cancelExecution } from "../control/cancel-execution.js";
import { startExecutions, type StartEnv } from "../intake/start-execution.js";
import type { Relay } from "../outbox/relay.js";
import type { ChildStart } from "../store/outbox.js";
import { attemptsStillDispatched } from "../store/outbox.js";

/** The task a child's end concludes: a map item's, or its sub-flow step's. */
const taskIdOfParent = (parent: ChildStart["parent"]) => parent.taskId ?? `${parent.executionId}/${parent.stepId}`;

/**
 * What the relay does with a sub-flow step's internal messages after commit: starts the child
 * executions (through the intake, under start key `subflow:<childId>`: a row applied twice
 * starts nothing twice) — a child that cannot start (its flow is gone) concludes its parent's
 * attempt with that error — and cancels the children of attempts that ended.
 */
export function subflowStarter(options: { startEnv: StartEnv; relay: Relay; log: Logger; conclude: (results: TaskResult[]) => Promise<void> }) {
  const { startEnv, relay, log } = options;
  return {
    async start(children: ChildStart[]): Promise<void> {
      const { outcomes, committed } = await startExecutions(
        startEnv,
        children.map((c) => ({
          flowId: c.flowId,
          flowVersion: c.flowVersion,
          startKey: `subflow:${c.executionId}`,
          subject: `sub-flow of ${c.parent.executionId}/${c.parent.stepId}`,
          start: { input: c.input, executionId: c.executionId, priority: c.priority, ...(c.tenantId ? { tenantId: c.tenantId } : {}) },
          parent: c.parent,
        })),
      );
      relay.afterCommit(committed);
      // A parent attempt that ended before its child started (cancelled, timed out): the child goes too.
      const created = children.filter((c) => committed.created.has(c.executionId));
      const attempts = created.map((c) => ({ taskId: taskIdOfParent(c.parent), executionId: c.parent.executionId, stepId: c.parent.stepId, attempt: c.parent.attempt }));
      const live = await attemptsStillDispatched(startEnv.db, attempts);
      const orphans = created.filter((_, i) => !live.has(`${attempts[i]!.taskId}:${attempts[i]!.attempt}`));
      if (orphans.length > 0) await this.cancel(orphans.map((c) => c.executionId));
      const refused: TaskResult[] = [];
      outcomes.forEach((outcome, i) => {
        if (!("error" in outcome)) return;
        const c = children[i]!;
        const at = new Date().toISOString();
        log.warn({ executionId: c.parent.executionId, stepId: c.parent.stepId, attempt: c.parent.attempt, code: outcome.error.code }, "sub-flow could not start; failing its step");
        refused.push({
          taskId: taskIdOfParent(c.parent),
          executionId: c.parent.executionId,
          stepId: c.parent.stepId,
          attempt: c.parent.attempt,
          outcome: "failure",
          failure: { code: outcome.error.code, message: `sub-flow ${c.flowId} could not start: ${outcome.error.message}`, retryable: false },
          metrics: { startedAt: at, completedAt: at, durationMs: 0, workerId: ENGINE_WORKER_ID, region: startEnv.defaultRegion },
        });
      });
      if (refused.length > 0) await options.conclude(refused);
    },
    async cancel(ids: string[]): Promise<void> {
      for (const id of ids) {
        try {
          relay.afterCommit(await cancelExecution(startEnv, id));
        } catch (thrown) {
          // Already over, or never started (its start failed): nothing to cancel.
          const err = toError(thrown);
          if (err instanceof FmError && (err.code === "INVALID_STATE" || err.code === "EXECUTION_NOT_FOUND")) continue;
          throw err;
        }
      }
    },
  };
}
