import type { JsMsg } from "@nats-io/jetstream";
import { decode, Event, excerpt, toError, toFmError, type Logger, type Subjects } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { retryLater } from "../consumers/redelivery.js";
import { evaluatePlain } from "../flows/expressions.js";
import type { Relay } from "../outbox/relay.js";
import type { ApplyEnv } from "../results/apply-result.js";
import { findWaitsForEvents } from "../store/wait-tokens.js";
import { resumeWaits, type WaitToResume } from "./resume-waits.js";

export interface EventEnv extends Pick<ApplyEnv, "db" | "registry" | "subjects" | "breakers" | "rates" | "vault"> {
  subjects: Subjects;
  relay: Relay;
  log: Logger;
  maxMessageBytes: number;
}

interface ReceivedEvent extends Event {
  name: string;
}

/**
 * Resumes the steps waiting for events (`resumeOn`) from FM_EVENTS, shared by the engine
 * replicas through one durable consumer. One event resumes every step that waits for its name
 * and whose filter accepts it; an event nobody waits for is simply acknowledged. Undecodable
 * events are logged and acknowledged: FM_EVENTS is everyone's stream, not only the engine's.
 */
export function createEventProcessor(env: EventEnv) {
  const process = async (msgs: JsMsg[]) => {
    const events: ReceivedEvent[] = [];
    for (const msg of msgs) {
      const name = env.subjects.parseEvent(msg.subject)?.name;
      try {
        if (!name) throw new Error(`subject ${msg.subject} names no event`);
        events.push({ name, ...decode(msg.data, Event, { maxBytes: env.maxMessageBytes, what: `event on ${msg.subject}` }) });
      } catch (err) {
        env.log.warn({ subject: msg.subject, reason: toFmError(err, "INVALID_INPUT").message, excerpt: excerpt(msg.data) }, "event not readable; no wait resumed by it");
      }
    }
    const waits = await findWaitsForEvents(env.db, [...new Set(events.map((e) => e.name))]);
    const due: WaitToResume[] = [];
    const taken = new Set<string>();
    for (const event of events) {
      for (const wait of waits) {
        if (wait.eventName !== event.name || taken.has(wait.token)) continue;
        if (wait.eventFilter && !(await filterAccepts(wait.eventFilter, event, env.log, wait.token))) continue;
        taken.add(wait.token);
        const { name, data, executionId, stepId, at } = event;
        due.push({
          token: wait.token,
          executionId: wait.executionId,
          stepId: wait.stepId,
          attempt: wait.attempt,
          cause: { reason: "event", payload: data, event: { name, ...(executionId ? { executionId } : {}), ...(stepId ? { stepId } : {}), ...(at ? { at } : {}) } },
        });
      }
    }
    if (due.length > 0) {
      const committed = await resumeWaits(env, due);
      env.relay.afterCommit(committed);
      const resumed = committed.value.filter((o) => o.resumed).length;
      env.log.debug({ events: events.length, resumed }, "events resumed waiting steps");
    }
    for (const msg of msgs) msg.ack();
  };
  return (msgs: JsMsg[]) => processIsolated(msgs, process, (msg, err) => retryLater(msg, err, env.log));
}

/** A filter that fails to evaluate rejects the event (and says so): it must not resume by accident. */
async function filterAccepts(filter: string, event: ReceivedEvent, log: Logger, token: string): Promise<boolean> {
  try {
    return Boolean(await evaluatePlain(filter, event));
  } catch (err) {
    log.warn({ err: toError(err), event: event.name, token }, "resumeOn filter failed on an event; not resuming");
    return false;
  }
}
