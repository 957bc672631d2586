import { abortableDelay, encode, findUnstorable, FmError, MAX_RESULT_JSON_DEPTH, type Logger, type TaskResult, toError, traceparentHeaders, unsupportedJson } from "@flowmonkey/shared";
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

/** A short pause before a task comes back after its result could not be stored, so a NATS hiccup is not a hot loop. */
export const PUBLISH_RETRY_DELAY_MS = 1000;

/**
 * How the worker keeps trying to store a result before it gives the task back. A failed publish
 * is nearly always the results stream between leaders (a hub node died: "no responders" until a
 * new leader is elected, a few seconds) or a reconnect. Giving the task back at once costs a
 * delivery per try: during one election, tasks whose handlers had already finished ran out of
 * deliveries and were dead-lettered (DELIVERIES_EXHAUSTED, seen when the clients' hub node was
 * SIGKILLed). Retrying in place keeps the finished work, and the caller keeps the task's
 * heartbeat going meanwhile, so it is not redelivered.
 */
export interface PublishRetry {
  /** Aborted when the worker stops waiting (forced shutdown): the task is given back at once. */
  signal?: AbortSignal;
  /** @default 60_000 — then the task is given back (another worker may have a better link). */
  giveUpAfterMs?: number;
}
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;
export const DEFAULT_RESULT_GIVE_UP_MS = 60_000;

/**
 * Publishes the result (de-duplicated by `taskId:attempt`, so a retried publish or a second run of
 * the same attempt is stored once), and only then settles the task message: `ack` for a result
 * the handler produced, `term` for a task that can never run. A failed publish is tried again
 * with backoff (see PublishRetry); when the worker gives up, the message is nak'ed and the task
 * redelivered: it is never acknowledged without its result stored.
 */
export async function publishResult(
  target: ResultTarget,
  msg: JsMsg,
  result: TaskResult,
  settle: "ack" | "term",
  log: Logger,
  /** The run's span: the engine's apply of this result joins its trace. */
  traceparent?: string,
  retry: PublishRetry = {},
): Promise<boolean> {
  const data = encodeResult(result, target.maxBytes());
  const headers = traceparent ? traceparentHeaders(traceparent) : undefined;
  const ids = { executionId: result.executionId, taskId: result.taskId, stepId: result.stepId, attempt: result.attempt };
  const giveUpAt = Date.now() + (retry.giveUpAfterMs ?? DEFAULT_RESULT_GIVE_UP_MS);
  for (let attempt = 0; ; attempt++) {
    try {
      await target.js.publish(target.subject, data, { msgID: `${result.taskId}:${result.attempt}`, ...(headers ? { headers } : {}) });
      if (attempt > 0) log.info({ ...ids, tries: attempt + 1 }, "result stored after retrying");
      break;
    } catch (thrown) {
      const pause = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
      if (Date.now() + pause >= giveUpAt || retry.signal?.aborted) {
        log.warn({ err: toError(thrown), ...ids, tries: attempt + 1 }, "result publish failed; task goes back to the queue");
        nakQuietly(msg, PUBLISH_RETRY_DELAY_MS);
        return false;
      }
      // The first failure is worth a line; the retries of one outage are not.
      if (attempt === 0) log.warn({ err: toError(thrown), ...ids }, "result publish failed; trying again");
      if (!(await abortableDelay(pause, retry.signal))) {
        nakQuietly(msg, PUBLISH_RETRY_DELAY_MS);
        return false;
      }
    }
  }
  if (settle === "term") {
    try {
      msg.term(); // no reason text: nats-server 2.9 ignores a `+TERM <reason>` ack entirely
    } catch {
      // Connection closed: the task comes back and is rejected again, with the same result msgID.
    }
    return true;
  }
  await ackConfirmed(msg, log, result.taskId);
  return true;
}

/**
 * The result's bytes; a result that cannot be sent or stored as it is becomes a non-retryable
 * failure saying why: not JSON (HANDLER_FAILED), text the engine's database refuses (a NUL, an
 * unpaired surrogate, nesting past 128 levels: UNSUPPORTED_JSON — the engine would fail the step
 * with it anyway, this says so with the handler's own ids), or too large (PAYLOAD_TOO_LARGE).
 */
export function encodeResult(result: TaskResult, maxBytes: number): Uint8Array {
  let data: Uint8Array;
  try {
    data = encode(result);
  } catch (thrown) {
    const why = new NonRetryableFailure("HANDLER_FAILED", `the result is not JSON-serializable: ${toError(thrown).message}`);
    return encode(replaceWithFailure(result, why));
  }
  // Logs are not stored by the engine; everything else the result carries is.
  const { logs: _logs, ...kept } = result;
  const spot = findUnstorable(kept, MAX_RESULT_JSON_DEPTH);
  if (spot) return encode(replaceWithFailure(result, unsupportedJson(`the handler's ${result.outcome} result cannot be stored`, spot)));
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

/**
 * Acks and waits for the server to confirm it before the slot is reused. The server applies acks
 * asynchronously; with a plain ack() its unacknowledged count for this worker briefly overshoots
 * the concurrency (measured: 6 with concurrency 4). Costs one round trip per task. An ack that is
 * not confirmed (connection lost) is not an error: the task comes back after ack_wait and its
 * second result is dropped as a duplicate (same msgID).
 */
export async function ackConfirmed(msg: JsMsg, log?: Logger, taskId?: string): Promise<void> {
  try {
    await msg.ackAck();
  } catch (thrown) {
    log?.debug({ err: toError(thrown), taskId }, "ack not confirmed");
  }
}
