import { encode, FmError, type Logger, type TaskResult, toError, traceparentHeaders } from "@flowmonkey/shared";
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { NonRetryableFailure } from "../sdk/failures.js";
import { toFailure } from "./outcome.js";

export interface ResultTarget {
  js: JetStreamClient;
  /** fm.results.<region> of this worker. */
  subject: string;
  /** Largest message the server takes; a bigger result is replaced by a PAYLOAD_TOO_LARGE failure. */
  maxBytes(): number;
}

/** A short pause before the task comes back after a failed publish, so a NATS hiccup is not a hot loop. */
export const PUBLISH_RETRY_DELAY_MS = 1000;

/**
 * Publishes the result (de-duplicated by `taskId:attempt`, so a retried publish or a second run of
 * the same attempt is stored once), and only then settles the task message: `ack` for a result
 * the handler produced, `term` for a task that can never run. If the publish fails the message is
 * nak'ed instead and the task is redelivered: it is never acknowledged without its result stored.
 */
export async function publishResult(
  target: ResultTarget,
  msg: JsMsg,
  result: TaskResult,
  settle: "ack" | "term",
  log: Logger,
  /** The run's span: the engine's apply of this result joins its trace. */
  traceparent?: string,
): Promise<boolean> {
  const data = encodeResult(result, target.maxBytes());
  const headers = traceparent ? traceparentHeaders(traceparent) : undefined;
  try {
    await target.js.publish(target.subject, data, { msgID: `${result.taskId}:${result.attempt}`, ...(headers ? { headers } : {}) });
  } catch (thrown) {
    log.warn({ err: toError(thrown), taskId: result.taskId, attempt: result.attempt }, "result publish failed; task goes back to the queue");
    nakQuietly(msg, PUBLISH_RETRY_DELAY_MS);
    return false;
  }
  if (settle === "term") {
    try {
      msg.term(); // no reason text: nats-server 2.9 ignores a `+TERM <reason>` ack entirely
    } catch {
      // Connection closed: the task comes back and is rejected again, with the same result msgID.
    }
    return true;
  }
  try {
    // Wait for the server to confirm the ack before the slot is reused. The server applies acks
    // asynchronously; with a plain ack() its unacknowledged count for this worker briefly
    // overshoots the concurrency (measured: 6 with concurrency 4). Costs one round trip per task.
    await msg.ackAck();
  } catch (thrown) {
    // The result is stored; if the ack was lost the task is redelivered after ack_wait and its
    // second result is dropped as a duplicate (same msgID).
    log.debug({ err: toError(thrown), taskId: result.taskId }, "ack not confirmed");
  }
  return true;
}

/** The result's bytes; a result that cannot be sent as it is becomes a non-retryable failure saying why. */
export function encodeResult(result: TaskResult, maxBytes: number): Uint8Array {
  let data: Uint8Array;
  try {
    data = encode(result);
  } catch (thrown) {
    const why = new NonRetryableFailure("HANDLER_FAILED", `the result is not JSON-serializable: ${toError(thrown).message}`);
    return encode(replaceWithFailure(result, why));
  }
  if (data.byteLength <= maxBytes) return data;
  const why = new FmError("PAYLOAD_TOO_LARGE", `the result is ${data.byteLength} bytes; the limit is ${maxBytes}`);
  return encode(replaceWithFailure(result, why));
}

function replaceWithFailure(result: TaskResult, error: unknown): TaskResult {
  const { taskId, executionId, stepId, attempt, metrics } = result;
  const outcome = result.outcome === "error" ? "error" : "failure";
  return { taskId, executionId, stepId, attempt, metrics, outcome, failure: toFailure(error) };
}

export function nakQuietly(msg: JsMsg, delayMs?: number): void {
  try {
    msg.nak(delayMs);
  } catch {
    // Only fails when the connection is closed; the server redelivers after ack_wait anyway.
  }
}
