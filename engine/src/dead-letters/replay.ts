import type { DlqReplayReply } from "@flowmonkey/shared";
import { rerunFailedStep } from "../control/retry-step.js";
import { Changes } from "../execution/changes.js";
import { itemOfTaskId } from "../execution/map-step.js";
import type { ApplyEnv } from "../results/apply-result.js";
import type { ExecutionState } from "../scheduler/state.js";
import { lockDeadTasks, markReplayed, type StoredDeadTask } from "../store/dead-tasks.js";
import { transition, type Committed } from "../store/transition.js";

type Refusal = DlqReplayReply["refused"][number];

/**
 * Replays dead letters: each one's step is dispatched again as a new attempt, and an execution
 * that failed because of it runs again (its steps cancelled by that failure become pending).
 * Only the step's latest attempt can be replayed, once (a map item's: an item of the step's
 * latest failed run, which maps again); a cancelled or completed execution is left alone. Everything happens in one transaction, with the new tasks in the outbox.
 */
export async function replayDeadTasks(env: ApplyEnv, ids: string[]): Promise<Committed<DlqReplayReply>> {
  const unique = [...new Set(ids)];
  const { rows } = await env.db.query<{ id: string; execution_id: string }>("SELECT id, execution_id FROM dead_tasks WHERE id = ANY($1::text[])", [unique]);
  const out = new Changes();
  return transition(
    env.db,
    [...new Set(rows.map((r) => r.execution_id))],
    async (executions, _out, q) => {
      const dead = await lockDeadTasks(q, unique);
      const replayed: string[] = [];
      const refused: Refusal[] = [];
      for (const id of unique) {
        const entry = dead.get(id);
        const refusal = entry ? await replayOne(env, executions.get(entry.executionId), entry, out) : { code: "DEAD_TASK_NOT_FOUND", message: `no dead-lettered task ${id}` };
        if (refusal) refused.push({ id, ...refusal });
        else replayed.push(id);
      }
      await markReplayed(q, replayed);
      return { replayed, refused };
    },
    out,
    env.vault,
  );
}

async function replayOne(env: ApplyEnv, exec: ExecutionState | undefined, entry: StoredDeadTask, out: Changes): Promise<Omit<Refusal, "id"> | undefined> {
  if (entry.replayedAt) return { code: "INVALID_STATE", message: `${entry.id} was already replayed at ${entry.replayedAt}` };
  if (!exec) return { code: "EXECUTION_NOT_FOUND", message: `execution ${entry.executionId} no longer exists` };
  if (exec.status === "completed" || exec.status === "cancelled") {
    return { code: "INVALID_STATE", message: `execution ${exec.id} is ${exec.status}; there is nothing to replay into` };
  }
  const step = exec.steps[entry.stepId];
  const item = itemOfTaskId(entry.id.slice(0, entry.id.lastIndexOf(":")), entry.executionId, entry.stepId);
  if (item) {
    // A map item's dead letter replays its step: the failed run maps again, as a new run.
    if (step?.status !== "failed" || step.map?.run !== item.run) {
      return { code: "INVALID_STATE", message: `map step ${entry.stepId} has moved on (now ${step?.status ?? "unknown"}, run ${step?.map?.run ?? 0}); only an item of its latest failed run can be replayed` };
    }
  } else if (step?.status !== "failed" || step.attempts !== entry.attempt) {
    return {
      code: "INVALID_STATE",
      message: `step ${entry.stepId} has moved on (now ${step?.status ?? "unknown"}, attempt ${step?.attempts ?? 0}); only its latest failed attempt can be replayed`,
    };
  }
  await rerunFailedStep(env, exec, entry.stepId, out);
  return undefined;
}
