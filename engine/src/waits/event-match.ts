import type { JsMsg } from "@nats-io/jetstream";
import { decode, Event, excerpt, toError, toFmError, type Logger, type Subjects } from "@flowmonkey/shared";
import { evaluatePlain } from "../flows/expressions.js";
import type { Rejection } from "../store/rejections.js";
import type { DueWait } from "../store/wait-tokens.js";
import type { WaitToResume } from "./resume-waits.js";

/** An event as a `resumeOn` filter sees it: `{ name, data, executionId, stepId, at }`. */
export interface ReceivedEvent extends Event {
  name: string;
}

/** An event read from FM_EVENTS, with where it sits in the stream. */
export interface StoredEvent {
  event: ReceivedEvent;
  /** FM_EVENTS stream sequence. */
  seq: number;
  /** When the stream stored it (the NATS server's clock). */
  storedAt: Date;
}

/** A step waiting for an event: its token row's name and filter. */
export interface EventWait extends DueWait {
  eventName: string;
  eventFilter?: string | null | undefined;
}

/**
 * Reads one FM_EVENTS message. An undecodable one is undefined (and logged when `warn`):
 * FM_EVENTS is everyone's stream, not only the engine's, so a bad event resumes nothing.
 */
export function readEvent(
  msg: JsMsg,
  env: { subjects: Subjects; maxMessageBytes: number; log: Logger },
  warn = true,
  /** Where to add the rejection of an unreadable event (the live consumer records them; the catch-up reads events again). */
  rejections?: Rejection[],
): StoredEvent | undefined {
  const name = env.subjects.parseEvent(msg.subject)?.name;
  try {
    if (!name) throw new Error(`subject ${msg.subject} names no event`);
    const event = { name, ...decode(msg.data, Event, { maxBytes: env.maxMessageBytes, what: `event on ${msg.subject}`, forStorage: true }) };
    return { event, seq: msg.seq, storedAt: msg.time };
  } catch (err) {
    const error = toFmError(err, "INVALID_INPUT");
    if (warn) env.log.warn({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) }, "event not readable; no wait resumed by it");
    rejections?.push({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) });
    return undefined;
  }
}

/**
 * The one matching rule of `resumeOn`, shared by the live event consumer and the catch-up
 * after a wait is recorded: events in stream order, each wait taken by the first event of its
 * name that its filter accepts (no filter: any). `eligible` narrows which events a wait may
 * see at all (the catch-up: only those of the attempt that parked). Each match carries the
 * resume cause and the event's stream sequence.
 */
export async function matchEvents<W extends EventWait>(
  events: StoredEvent[],
  waits: W[],
  log: Logger,
  eligible: (event: StoredEvent, wait: W) => boolean = () => true,
  taken: Set<string> = new Set(),
): Promise<Array<WaitToResume & { eventSeq: number }>> {
  const due: Array<WaitToResume & { eventSeq: number }> = [];
  for (const stored of events) {
    const event = stored.event;
    for (const wait of waits) {
      if (wait.eventName !== event.name || taken.has(wait.token) || !eligible(stored, wait)) continue;
      if (wait.eventFilter && !(await filterAccepts(wait.eventFilter, event, log, wait.token))) continue;
      taken.add(wait.token);
      const { name, data, executionId, stepId, at } = event;
      due.push({
        token: wait.token,
        executionId: wait.executionId,
        stepId: wait.stepId,
        attempt: wait.attempt,
        eventSeq: stored.seq,
        cause: { reason: "event", payload: data, event: { name, ...(executionId ? { executionId } : {}), ...(stepId ? { stepId } : {}), ...(at ? { at } : {}) } },
      });
    }
  }
  return due;
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
