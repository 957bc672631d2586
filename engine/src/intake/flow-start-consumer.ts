import type { JsMsg } from "@nats-io/jetstream";
import type { ServiceMsg } from "@nats-io/services";
import { decode, FlowStart, FmError, HEADERS, excerpt, toFmError, type Logger, type Names } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { rejectionRecorder, retryLater } from "../consumers/redelivery.js";
import type { Relay } from "../outbox/relay.js";
import type { Rejection } from "../store/rejections.js";
import { startExecutions, type StartEnv, type StartOutcome, type StartRequest } from "./start-execution.js";
import { respond } from "../api/respond.js";
import { randomUUID } from "node:crypto";

/** A start from the FM_FLOWS stream (`nats pub`) or from the request/reply API (`nats req`). */
export type IntakeItem = { kind: "stream"; msg: JsMsg } | { kind: "api"; msg: ServiceMsg; flowId: string };

export interface IntakeEnv extends StartEnv {
  names: Names;
  relay: Relay;
  log: Logger;
  maxMessageBytes: number;
}

/**
 * Turns a batch of flow-start messages into executions in one transaction. Bad input is
 * recorded as a rejection with its reason in the same transaction (and answered, where there
 * is someone to answer); every message is acknowledged only after that commit.
 */
export function createIntakeProcessor(env: IntakeEnv) {
  const process = async (items: IntakeItem[]) => {
    const requests: StartRequest[] = [];
    const accepted: IntakeItem[] = [];
    const rejections: Rejection[] = [];
    const refused: Array<{ item: IntakeItem; error: FmError }> = [];

    for (const item of items) {
      const subject = item.msg.subject;
      try {
        const flowId = item.kind === "api" ? item.flowId : env.names.subjects.parseFlowStart(subject)?.flowId;
        if (!flowId) throw new FmError("INVALID_INPUT", `subject ${subject} does not name a flow`);
        const start = decode(item.msg.data, FlowStart, { maxBytes: env.maxMessageBytes, what: `flow start on ${subject}`, forStorage: true });
        const traceparent = item.msg.headers?.get(HEADERS.traceparent);
        requests.push({ flowId, start, startKey: startKeyOf(item, start.executionId), subject, ...(traceparent ? { traceparent } : {}) });
        accepted.push(item);
      } catch (err) {
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject, code: error.code, reason: error.message, excerpt: excerpt(item.msg.data) });
        refused.push({ item, error });
      }
    }

    const { outcomes, committed } = await startExecutions(env, requests, rejections);
    env.relay.afterCommit(committed);
    accepted.forEach((item, i) => settle(item, outcomes[i]!));
    for (const { item, error } of refused) settle(item, { error });
  };

  const settle = (item: IntakeItem, outcome: StartOutcome) => {
    if ("error" in outcome) {
      env.log.warn({ subject: item.msg.subject, code: outcome.error.code, reason: outcome.error.message }, "flow start rejected");
      // Acked, not termed: the rejection row is the record, and on nats-server 2.9 a termed
      // message stays in a work-queue stream and keeps counting against max_ack_pending.
      if (item.kind === "stream") item.msg.ack();
      else respond(item.msg, outcome.error);
      return;
    }
    if (item.kind === "stream") item.msg.ack();
    else respond(item.msg, outcome);
  };

  const recordGiveUp = rejectionRecorder(env.db);
  return (items: IntakeItem[]) =>
    processIsolated(items, process, (item, err) => {
      if (item.kind === "stream") retryLater(item.msg, err, env.log, recordGiveUp);
      else respond(item.msg, new FmError("UNAVAILABLE", `could not start the execution: ${err.message}`, { cause: err }));
    });
}

/**
 * What makes two deliveries one start: the caller's executionId, else the publisher's
 * Nats-Msg-Id, else the message's stream position (sequence plus its timestamp, so a
 * recreated stream does not collide with old positions). An API call without an
 * executionId is a new start each time.
 */
function startKeyOf(item: IntakeItem, executionId: string | undefined): string {
  if (executionId) return `exec:${executionId}`;
  if (item.kind === "api") return `api:${randomUUID()}`;
  const msgId = item.msg.headers?.get(HEADERS.msgId);
  if (msgId) return `msgid:${msgId}`;
  return `seq:${item.msg.info.stream}:${item.msg.seq}:${item.msg.info.timestampNanos}`;
}
