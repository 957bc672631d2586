import {
  decode,
  findUnstorable,
  MAX_RESULT_JSON_DEPTH,
  FmError,
  storableText,
  TaskResult,
  isFmError,
  type Subjects,
} from "@flowmonkey/shared";
import { itemOfTaskId } from "../execution/map-step.js";

/** The id the engine gives every attempt of a step (execution/advance.ts taskOf). */
export const taskIdOf = (executionId: string, stepId: string) => `${executionId}/${stepId}`;

/**
 * A task result off `fm.results.<region>` → a result the engine may try to apply, or an
 * FmError saying why it is refused (recorded as a rejection by the caller):
 *
 * - undecodable (PAYLOAD_TOO_LARGE, INVALID_JSON, INVALID_INPUT);
 * - its envelope contradicts itself (RESULT_MISMATCH): the task id is not the one the engine
 *   gives that execution's step, or the region it says it ran in is not the results subject's
 *   region. A forged `taskId` once completed one execution's step while writing another's
 *   attempt row.
 *
 * Whether the attempt is the one the engine dispatched (step, attempt, region) is checked when
 * it is applied, against the locked execution and the attempt's row (apply-result.ts).
 *
 * A result whose envelope is sound but whose output, failure, wait or context updates hold
 * JSON PostgreSQL cannot store is not refused: it becomes a non-retryable UNSUPPORTED_JSON
 * failure of its attempt, so the step fails with a clear code instead of staying dispatched
 * until its timeout while the result was retried and dropped. Likewise a result larger than
 * the engine takes (but readable): a PAYLOAD_TOO_LARGE failure of its attempt.
 */
export function readResult(data: Uint8Array, subject: string, env: { subjects: Subjects; maxMessageBytes: number }): TaskResult & { fromWire: true } {
  const what = `task result on ${subject}`;
  let result: TaskResult;
  let tooLarge: FmError | undefined;
  try {
    result = decode(data, TaskResult, { maxBytes: env.maxMessageBytes, what });
  } catch (err) {
    if (!isFmError(err, "PAYLOAD_TOO_LARGE")) throw err;
    // Bigger than the engine takes (FM_MAX_MESSAGE_BYTES) but not than the server does (the worker
    // checks only that): read once, for its ids, so that its step fails instead of waiting for
    // its timeout. Not readable either: refused as too large, as before.
    result = (() => {
      try {
        return decode(data, TaskResult, { maxBytes: data.byteLength, what });
      } catch {
        throw err;
      }
    })();
    tooLarge = err;
  }
  const mismatch = envelopeMismatch(result, env.subjects.parseResults(subject)?.region);
  if (mismatch) throw new FmError("RESULT_MISMATCH", `task result on ${subject}: ${mismatch}`);
  // Logs are not stored (only what the engine keeps is checked).
  const { logs: _logs, ...kept } = result;
  if (tooLarge) return { ...failedInstead(result, "PAYLOAD_TOO_LARGE", `the handler's ${result.outcome} result cannot be taken: ${tooLarge.message}`), fromWire: true };
  const spot = findUnstorable(kept, MAX_RESULT_JSON_DEPTH);
  return { ...(spot ? failedInstead(result, "UNSUPPORTED_JSON", `the handler's ${result.outcome} result cannot be stored: ${spot.path} ${spot.problem}`) : result), fromWire: true };
}

/** Why a result's own fields disagree with each other or with where it came from; undefined when they agree. */
export function envelopeMismatch(result: TaskResult, subjectRegion: string | undefined): string | undefined {
  const expected = taskIdOf(result.executionId, result.stepId);
  if (result.taskId !== expected && !itemOfTaskId(result.taskId, result.executionId, result.stepId)) {
    return `taskId ${JSON.stringify(storableText(result.taskId))} is not the task of execution ${result.executionId} step ${result.stepId} (${expected}, or ${expected}#<run>.<index> for a map item)`;
  }
  if (subjectRegion === undefined) return "the subject names no region";
  if (result.metrics.region !== subjectRegion) return `it says it ran in region ${result.metrics.region}, but came on region ${subjectRegion}'s subject`;
  return undefined;
}

/**
 * The failure that replaces a result the engine cannot keep (too large, or text the store
 * refuses): the attempt fails, not retried (the same run gives the same output), and its context
 * updates are dropped with it.
 */
export function failedInstead(result: TaskResult, code: "UNSUPPORTED_JSON" | "PAYLOAD_TOO_LARGE", message: string): TaskResult {
  const { taskId, executionId, stepId, attempt, metrics } = result;
  return {
    taskId,
    executionId,
    stepId,
    attempt,
    outcome: "failure",
    failure: { code, message: storableText(message).slice(0, 16_000), retryable: false },
    metrics: { ...metrics, workerId: storableText(metrics.workerId) },
  };
}
