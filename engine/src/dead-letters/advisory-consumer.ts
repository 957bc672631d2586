import type { JsMsg } from "@nats-io/jetstream";
import { decode, excerpt, isUnreachable, MaxDeliveriesAdvisory, Task, toError, toFmError, type Failure, type Logger, type Names } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { retryLater } from "../consumers/redelivery.js";
import type { DomainManagers } from "../regions/domain-managers.js";
import { applyResults, engineConcluded, type ResultToApply } from "../results/apply-result.js";
import type { ResultEnv } from "../results/result-consumer.js";
import type { Rejection } from "../store/rejections.js";

export interface DeadTaskEnv extends ResultEnv {
  /** The task streams of the hub and of each leaf domain (see regions/domain-managers.ts). */
  domains: DomainManagers;
  names: Names;
}

/** What the engine reports as the attempt's result when JetStream gave up on it. */
export function deliveriesExhausted(deliveries: number): Failure {
  return {
    code: "DELIVERIES_EXHAUSTED",
    message:
      `no worker finished the task in ${deliveries} deliveries: each worker that took it stopped heartbeating ` +
      `(killed, crashed or cut off) before it sent a result`,
    retryable: false,
  };
}

/**
 * The leaf domain whose task stream the advisory is about; undefined for the engine's own. The
 * server says it (`domain`, set by nats-server 2.9.10 on a server with a domain); without it, the
 * consumer's region does, through the topology.
 */
export function advisoryDomain(advisory: MaxDeliveriesAdvisory, domains: DomainManagers, names: Names): string | undefined {
  if (advisory.domain !== undefined) return domains.isOwn(advisory.domain) ? undefined : advisory.domain;
  const pool = names.consumers.parseTaskPool(advisory.consumer);
  return pool ? domains.domainOfRegion(pool.region) : undefined;
}

/** A domain that does not answer (its link is down): the advisory waits for it, however long, instead of counting as poison. */
class DomainUnreachableError extends Error {
  override name = "DomainUnreachableError";
  constructor(readonly domain: string | undefined, cause: unknown) {
    super(`JetStream domain ${domain ?? "(own)"} does not answer`, { cause });
  }
}

const UNREACHABLE_RETRY_MAX_MS = 30_000;

function retryWhenReachable(msg: JsMsg, err: Error, log: Logger): void {
  if (!(err instanceof DomainUnreachableError)) return retryLater(msg, err, log);
  const deliveries = msg.info.deliveryCount;
  log.warn({ err, domain: err.domain, subject: msg.subject, streamSeq: msg.seq, deliveries }, "cannot reach the advisory's domain (link down?); will retry");
  msg.nak(Math.min(UNREACHABLE_RETRY_MAX_MS, 1000 * 2 ** Math.min(deliveries - 1, 5)));
}

/**
 * Consumes the task pools' MAX_DELIVERIES advisories (kept in a stream, so none is missed
 * while no engine runs; a leaf domain's are kept in the domain and sourced in, so none is
 * missed while its link is cut). For each, the task still parked in that domain's work queue
 * is read back, its step settled as failed with DELIVERIES_EXHAUSTED and the task dead-lettered
 * in the same transaction; then the message is deleted from that task stream and the advisory
 * acked. Every step is safe to repeat after a crash: the result applies once per attempt, the
 * dead letter is keyed by task and attempt, and a task already deleted is simply skipped.
 *
 * Every domain's task stream has the same name and its own sequences: an advisory is only ever
 * read against the stream of its own domain, and the message found there must still be a task
 * of the consumer that gave up (the consumer names the region).
 */
export function createDeadTaskProcessor(env: DeadTaskEnv) {
  const tasksStream = env.names.streams.tasks;

  const process = async (msgs: JsMsg[]) => {
    const results: ResultToApply[] = [];
    const rejections: Rejection[] = [];
    const parked = new Map<string, { domain: string | undefined; seq: number }>();
    for (const msg of msgs) {
      let advisory: MaxDeliveriesAdvisory;
      try {
        advisory = decode(msg.data, MaxDeliveriesAdvisory, { what: `advisory on ${msg.subject}` });
      } catch (err) {
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) });
        continue;
      }
      if (advisory.stream !== tasksStream) continue;
      const domain = advisoryDomain(advisory, env.domains, env.names);
      const key = `${domain ?? ""}/${advisory.stream_seq}`;
      // The same advisory twice in one batch (a redelivery, or a live copy beside the sourced one).
      if (parked.has(key)) continue;
      const jsm = await env.domains.of(domain);
      const stored = await jsm.streams.getMessage(tasksStream, { seq: advisory.stream_seq }).catch((err: unknown) => {
        throw isUnreachable(err) ? new DomainUnreachableError(domain, err) : err;
      });
      // Gone already: a slow worker's ack landed after all, or an earlier pass deleted it.
      if (!stored) continue;
      const where = { domain: domain ?? "(own)", streamSeq: advisory.stream_seq, consumer: advisory.consumer };
      let task: Task;
      try {
        task = decode(stored.data, Task, { maxBytes: env.maxMessageBytes, what: `task at ${tasksStream} seq ${advisory.stream_seq} in domain ${where.domain}` });
      } catch (err) {
        parked.set(key, { domain, seq: advisory.stream_seq });
        const error = toFmError(err, "INVALID_INPUT");
        rejections.push({ subject: stored.subject, code: error.code, reason: `undeliverable task dropped: ${error.message}`, excerpt: excerpt(stored.data) });
        continue;
      }
      // The sequence must still hold the task that consumer gave up on (a recreated stream reuses
      // sequences). The subject it was stored under names the pool (a capability-qualified one
      // included), and so the one consumer whose filter it is.
      const pool = env.names.subjects.parseTask(stored.subject);
      if (!pool || pool.handler !== task.handler.type || env.names.consumers.taskPool(pool.region, pool.handler, pool.priority, pool.capabilities) !== advisory.consumer) {
        env.log.warn({ ...where, taskId: task.taskId }, "stale MAX_DELIVERIES advisory: the sequence now holds another task; ignored");
        continue;
      }
      parked.set(key, { domain, seq: advisory.stream_seq });
      results.push({
        ...engineConcluded(
          { taskId: task.taskId, executionId: task.executionId, stepId: task.stepId, attempt: task.attempt, region: task.metadata.region },
          deliveriesExhausted(advisory.deliveries),
        ),
        deadLetter: { task, deliveries: advisory.deliveries },
      });
      env.log.warn(
        { ...where, executionId: task.executionId, taskId: task.taskId, stepId: task.stepId, attempt: task.attempt, region: task.metadata.region, deliveries: advisory.deliveries },
        "task deliveries exhausted; dead-lettering it",
      );
    }
    const { committed } = await applyResults(env, results, rejections);
    env.relay.afterCommit(committed);
    // Only now that the outcome is committed may the parked copy go. A domain that went away
    // meanwhile keeps it: the advisory is retried, finds the outcome applied, and deletes it then.
    for (const { domain, seq } of parked.values()) {
      const jsm = await env.domains.of(domain);
      await jsm.streams.deleteMessage(tasksStream, seq, false).catch((err: unknown) => {
        if (isUnreachable(err)) throw new DomainUnreachableError(domain, err);
        env.log.debug({ err: toError(err), domain: domain ?? "(own)", streamSeq: seq }, "parked task already gone");
      });
    }
    for (const msg of msgs) msg.ack();
  };
  return (msgs: JsMsg[]) => processIsolated(msgs, process, (msg, err) => retryWhenReachable(msg, err, env.log));
}
