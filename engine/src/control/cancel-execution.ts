import { FmError, type ExecutionStatus, type Subjects } from "@flowmonkey/shared";
import { finish, isTerminal } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import type { Db } from "../store/db.js";
import { transition, type Committed } from "../store/transition.js";

/**
 * Cancels an execution as a state change: steps still pending or in flight are marked
 * cancelled, and results that arrive for them later are ignored. Cancelling a cancelled
 * execution answers the same; a completed or failed one cannot be cancelled.
 */
export async function cancelExecution(
  env: { db: Db; subjects: Subjects },
  executionId: string,
): Promise<Committed<{ executionId: string; status: ExecutionStatus }>> {
  const out = new Changes();
  return transition(
    env.db,
    [executionId],
    async (executions) => {
      const exec = executions.get(executionId);
      if (!exec) throw new FmError("EXECUTION_NOT_FOUND", `no execution ${executionId}`);
      if (exec.status === "cancelled") return { executionId, status: exec.status };
      if (isTerminal(exec.status)) throw new FmError("INVALID_STATE", `execution ${executionId} is already ${exec.status}`);
      finish(exec, "cancelled", out, { subjects: env.subjects, now: new Date() });
      out.updated.set(exec.id, exec);
      return { executionId, status: exec.status };
    },
    out,
  );
}
