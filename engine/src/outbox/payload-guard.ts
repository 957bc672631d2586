import type { Logger, Subjects } from "@flowmonkey/shared";
import type { ContextOffload } from "../context/offload.js";
import type { Changes } from "../execution/changes.js";
import { isInternal, type OutboxMessage } from "../store/outbox.js";
import { conclusionOf, taskIdentityOf } from "./conclusions.js";
import { PUBLISH_HEADROOM_BYTES } from "./publish-failure.js";
import { encodedBody } from "./encoded-body.js";

export interface PayloadGuardOptions {
  /** The NATS server's max_payload, read from its INFO when asked (a reconnect may change it). */
  maxPayload: () => number;
  subjects: Subjects;
  log: Logger;
  /** Moves a task's context to the blob bucket; absent, a task too large fails at once. */
  offload?: ContextOffload | undefined;
}

export interface PayloadGuardStats {
  /** Tasks whose context was offloaded only because the task would not fit otherwise. */
  offloaded: number;
  /** Tasks replaced by a PAYLOAD_TOO_LARGE failure of their attempt. */
  refusedTasks: number;
  /** Execution events sent without their `output` (outputOmitted instead). */
  trimmedEvents: number;
  /** Events and dead-letter notices left out (their state is in the database). */
  droppedMessages: number;
}

export interface PayloadGuard {
  /**
   * Makes every message of a transaction publishable before it is written to the outbox:
   * nothing larger than the server's max_payload is ever committed as something to send.
   * - a task first has its inline context offloaded (where the engine offloads contexts); a
   *   task still too large (its input) is replaced by its attempt's PAYLOAD_TOO_LARGE failure,
   *   which the relay applies like a result, so the step fails with a clear code;
   * - an execution event goes without its `output` (`outputOmitted: { bytes }`; the output is
   *   in the execution), or not at all if even that is too large;
   * - a dead-letter notice too large is not published (its dead_tasks row keeps the task).
   */
  fit(out: Changes): Promise<void>;
  stats(): PayloadGuardStats;
}

/** What a message costs against max_payload: its JSON, plus room for its headers and routing's rewrites. */
export function publishedBytes(message: OutboxMessage): number {
  return encodedBody(message.body).byteLength + PUBLISH_HEADROOM_BYTES;
}

export function createPayloadGuard(options: PayloadGuardOptions): PayloadGuard {
  const { subjects, log, offload } = options;
  const stats: PayloadGuardStats = { offloaded: 0, refusedTasks: 0, trimmedEvents: 0, droppedMessages: 0 };

  /** The message to write instead of `m` (itself when it fits), or undefined to leave it out. */
  async function fitOne(executionId: string, m: OutboxMessage, out: Changes, limit: number): Promise<OutboxMessage | undefined> {
    if (isInternal(m)) return m;
    let bytes = publishedBytes(m);
    if (bytes <= limit) return m;
    const task = taskIdentityOf(m);
    if (task) {
      if (await offload?.offloadTask(executionId, m, out)) {
        stats.offloaded++;
        bytes = publishedBytes(m);
        if (bytes <= limit) return m;
      }
      stats.refusedTasks++;
      const { stepId, attempt } = task;
      log.warn({ executionId, stepId, attempt, bytes, maxPayload: limit }, "task too large to publish: its step fails with PAYLOAD_TOO_LARGE");
      return conclusionOf(m, task, {
        code: "PAYLOAD_TOO_LARGE",
        message: `the task of step ${stepId} (attempt ${attempt}) is ${bytes - PUBLISH_HEADROOM_BYTES} bytes of JSON, over the NATS server's max_payload of ${limit} with its headers; its input is too large to send (a large context is offloaded to the blob bucket, an input is not)`,
        retryable: false,
      });
    }
    const body = m.body;
    if (subjects.parseExec(m.subject) && isObject(body) && "output" in body) {
      const { output, ...rest } = body;
      const trimmed: OutboxMessage = { ...m, body: { ...rest, outputOmitted: { bytes: Buffer.byteLength(JSON.stringify(output ?? null)) } } };
      if (publishedBytes(trimmed) <= limit) {
        stats.trimmedEvents++;
        return trimmed;
      }
    }
    stats.droppedMessages++;
    log.warn({ executionId, subject: m.subject, bytes, maxPayload: limit }, "message too large to publish: left out (its state is in the database)");
    return undefined;
  }

  async function fitList(executionId: string, messages: OutboxMessage[], out: Changes, limit: number): Promise<void> {
    const fitted: OutboxMessage[] = [];
    for (const m of messages) {
      const f = await fitOne(executionId, m, out, limit);
      if (f) fitted.push(f);
    }
    // In place: the effects keep their arrays (lane dispatches and delayed rows hold them).
    messages.splice(0, messages.length, ...fitted);
  }

  return {
    async fit(out) {
      const limit = options.maxPayload();
      for (const [executionId, effects] of out.effects) {
        await fitList(executionId, effects.messages, out, limit);
        for (const d of effects.delayed) await fitList(executionId, d.messages, out, limit);
        for (const d of effects.laneDispatches) await fitList(executionId, d.messages, out, limit);
      }
    },
    stats: () => ({ ...stats }),
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
