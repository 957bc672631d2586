import type { JsMsg } from "@nats-io/jetstream";
import { decode, Event, excerpt, toError, toFmError, type Logger, type Subjects } from "@flowmonkey/shared";
import { evaluatePlain } from "../flows/expressions.js";
import type { Rejection } from "../store/rejections.js";
import type { DueWait } from "../store/wait-tokens.js";
import type { WaitToResume } from "./resume-waits.js";

/**
 * An event as a `resumeOn` filter sees it: `{ name, data, executionId, stepId, at }`, and
 * `region` when a region's worker emitted it (taken from the subject, which permissions bind,
 * not from the body).
 */
export interface ReceivedEvent extends Event {
  name: string;
  region?: string;
}

/** An event read from FM_EVENTS, with where it sits in the stream. */
export interface StoredEvent {
  event: ReceivedEvent;
  /** FM_EVENTS stream sequence. */
  seq: number;
  /** When the stream stored it (the NATS server's clock). */
  storedAt: Date;
}

/** A step waiting for an event: its token row's name and filter, and the region its attempt parked in. */
export interface EventWait extends DueWait {
  eventName: string;
  eventFilter?: string | null | undefined;
  /** Absent for a wait recorded before regions were kept (migration 0018 filled those it could). */
  region?: string | null | undefined;
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
  const origin = env.subjects.parseEvent(msg.subject);
  try {
    if (!origin) throw new Error(`subject ${msg.subject} names no event`);
    const body = decode(msg.data, Event, { maxBytes: env.maxMessageBytes, what: `event on ${msg.subject}`, forStorage: true });
    const event: ReceivedEvent = { ...body, name: origin.name, ...(origin.region ? { region: origin.region } : {}) };
    return { event, seq: msg.seq, storedAt: msg.time };
  } catch (err) {
    const error = toFmError(err, "INVALID_INPUT");
    if (warn) env.log.warn({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) }, "event not readable; no wait resumed by it");
    rejections?.push({ subject: msg.subject, code: error.code, reason: error.message, excerpt: excerpt(msg.data) });
    return undefined;
  }
}

/**
 * Whether an event may resume a wait at all: one from a trusted publisher may resume any; one a
 * region's worker emitted only a step that parked in that region — a worker must not resume
 * another region's (or tenant's, elsewhere) waits by publishing events.
 */
export function mayResume(event: ReceivedEvent, wait: EventWait): boolean {
  return event.region === undefined || event.region === wait.region;
}

/**
 * The one matching rule of `resumeOn`, shared by the live event consumer and the catch-up
 * after a wait is recorded: events in stream order, each wait taken by the first event of its
 * name that may resume it (`mayResume`) and that its filter accepts (no filter: any). `eligible` narrows which events a wait may
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
      if (wait.eventName !== event.name || taken.has(wait.token) || !mayResume(event, wait) || !eligible(stored, wait)) continue;
      if (wait.eventFilter && !(await filterAccepts(wait.eventFilter, event, log, wait.token))) continue;
      taken.add(wait.token);
      const { name, region, data, executionId, stepId, at } = event;
      due.push({
        token: wait.token,
        executionId: wait.executionId,
        stepId: wait.stepId,
        attempt: wait.attempt,
        eventSeq: stored.seq,
        cause: {
          reason: "event",
          payload: data,
          event: { name, ...(region ? { region } : {}), ...(executionId ? { executionId } : {}), ...(stepId ? { stepId } : {}), ...(at ? { at } : {}) },
        },
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
