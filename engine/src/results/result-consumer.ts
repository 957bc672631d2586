import type { JsMsg } from "@nats-io/jetstream";
import { endSpan, excerpt, HEADERS, startSpanFrom, toFmError, type Logger } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { rejectionRecorder, retryLater } from "../consumers/redelivery.js";
import type { Relay } from "../outbox/relay.js";
import type { Rejection } from "../store/rejections.js";
import type { EventCatchUp } from "../waits/event-catch-up.js";
import { applyResults, type ApplyEnv, type ResultToApply } from "./apply-result.js";
import { readResult } from "./read-result.js";

export interface ResultEnv extends ApplyEnv {
  relay: Relay;
  log: Logger;
  maxMessageBytes: number;
  /** Resumes new waits on events that came while their step ran; absent, only later events resume them. */
  catchUp?: EventCatchUp | undefined;
}

/**
 * Catch-ups queued behind the result batches at most; past this a batch's new waits are left
 * to the wait timer's sweep (after its grace), which catches up every wait no engine did.
 */
const MAX_QUEUED_CATCH_UPS = 64;

/**
 * Applies a batch of results from FM_RESULTS in one transaction, then acknowledges them.
 * An undecodable or self-contradicting result (read-result.ts) is recorded as a rejection
 * (then acked); so is one that does not match the attempt the engine dispatched; the rest go on. Waits for
 * events recorded by the batch are then caught up on the events that came while their steps
 * ran — off the batch's path (the batch is committed and acked by then, and a catch-up costs
 * NATS round trips the next batch need not wait for), one catch-up at a time.
 */
export function createResultProcessor(env: ResultEnv) {
  let catchUps: Promise<unknown> = Promise.resolve();
  let queuedCatchUps = 0;
  const catchUpLater = (catchUp: EventCatchUp, parked: Parameters<EventCatchUp>[0]) => {
    if (queuedCatchUps >= MAX_QUEUED_CATCH_UPS) {
      env.log.debug({ waits: parked.length }, "event catch-up queue full; the wait timer's sweep catches these waits up");
      return;
    }
    queuedCatchUps++;
    // A catch-up never rejects (it logs and leaves its waits to the sweep).
    catchUps = catchUps.then(() => catchUp(parked)).finally(() => queuedCatchUps--);
  };
  const process = async (msgs: JsMsg[]) => {
    const results: ResultToApply[] = [];
    const accepted: JsMsg[] = [];
    const rejections: Rejection[] = [];
    const refused: JsMsg[] = [];
    for (const msg of msgs) {
      try {
        results.push(readResult(msg.data, msg.subject, env));
        accepted.push(msg);
      } catch (err) {
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) });
        refused.push(msg);
        env.log.warn({ subject: msg.subject, code: error.code, reason: error.message }, "task result rejected");
      }
    }
    // A span per result that came with its run's traceparent: the apply joins the execution's trace.
    const spans = accepted.map((msg, i) => {
      const r = results[i]!;
      const traceparent = msg.headers?.get(HEADERS.traceparent);
      return traceparent
        ? startSpanFrom("flowmonkey.result.apply", traceparent, { "flowmonkey.execution_id": r.executionId, "flowmonkey.step_id": r.stepId, "flowmonkey.attempt": r.attempt, "flowmonkey.outcome": r.outcome })
        : undefined;
    });
    const applied = await applyResults(env, results, rejections).catch((err: unknown) => {
      for (const span of spans) if (span) endSpan(span, err);
      throw err;
    });
    const { outcomes, committed, parked } = applied;
    outcomes.forEach((outcome, i) => {
      const span = spans[i];
      if (!span) return;
      span.setAttribute("flowmonkey.applied", outcome);
      endSpan(span);
    });
    env.relay.afterCommit(committed);
    for (const msg of accepted) msg.ack();
    // Recorded as rejections in the commit above; acked so that they leave the work queue.
    for (const msg of refused) msg.ack();
    outcomes.forEach((outcome, i) => {
      if (outcome === "applied") return;
      const r = results[i]!;
      const ids = { executionId: r.executionId, taskId: r.taskId, stepId: r.stepId, attempt: r.attempt, workerId: r.metrics.workerId, region: r.metrics.region, outcome };
      if (outcome === "ignored") env.log.debug(ids, "result not applied");
      else env.log.warn(ids, "result rejected: it does not match the attempt the engine dispatched");
    });
    if (parked.length > 0 && env.catchUp) catchUpLater(env.catchUp, parked);
  };
  const recordGiveUp = rejectionRecorder(env.db);
  return (msgs: JsMsg[]) => processIsolated(msgs, process, (msg, err) => retryLater(msg, err, env.log, recordGiveUp));
}
