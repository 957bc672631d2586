import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { toError, type Logger } from "@flowmonkey/shared";
import type { Relay } from "../outbox/relay.js";
import type { ApplyEnv } from "../results/apply-result.js";
import { dispatchTimesOf } from "../store/tasks.js";
import { markCaughtUp } from "../store/wait-tokens.js";
import { matchEvents, readEvent, type EventWait, type StoredEvent } from "./event-match.js";
import { resumeWaits, type WaitToResume } from "./resume-waits.js";

/**
 * How much earlier than an attempt's dispatch (the engine's clock) an event may have been
 * stored (the NATS server's clock) and still count as the attempt's: covers the clock skew
 * between engine hosts and the server.
 */
export const DEFAULT_CATCH_UP_CLOCK_SKEW_MS = 1000;
/** Most events of one name one catch-up reads; a longer backlog is cut here (and logged). */
export const DEFAULT_CATCH_UP_MAX_EVENTS = 10_000;
/**
 * How long after it was recorded a wait whose catch-up has not completed is taken by the sweep:
 * well past the commit-then-catch-up of the engine that recorded it, so the two do not race.
 */
export const DEFAULT_CATCH_UP_GRACE_MS = 10_000;
/** The longest the sweep waits before retrying a catch-up that keeps failing (it doubles from the grace up to this). */
export const DEFAULT_CATCH_UP_MAX_BACKOFF_MS = 300_000;
const FETCH_BATCH = 256;
/** The scan's ephemeral consumer is gone this long after an engine that died mid-scan. */
const CONSUMER_INACTIVE_MS = 60_000;

/** A wait for an event, just recorded with a result. */
export interface ParkedEventWait extends EventWait {
  eventFilter?: string;
  /** FM_EVENTS sequence of the event that last resumed the step: only later events may resume it again. */
  afterSeq?: number;
}

export interface CatchUpEnv extends Pick<ApplyEnv, "db" | "registry" | "subjects" | "breakers" | "rates" | "vault"> {
  relay: Pick<Relay, "afterCommit">;
  log: Logger;
  maxMessageBytes: number;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The FM_EVENTS stream's name. */
  stream: string;
  /** @default DEFAULT_CATCH_UP_CLOCK_SKEW_MS */
  clockSkewMs?: number;
  /** @default DEFAULT_CATCH_UP_MAX_EVENTS */
  maxEvents?: number;
}

/**
 * Resumes what it can of the waits given (just parked, or left not caught up and claimed by the
 * sweep), marks those whose catch-up completed, and resolves to how many it resumed. Never rejects.
 */
export type EventCatchUp = (parked: ParkedEventWait[]) => Promise<number>;

type Scoped = ParkedEventWait & { fromMs: number };

/**
 * Events that arrived while a step ran — after its attempt was dispatched, before its wait was
 * committed — found no wait row when the live consumer (event-consumer.ts) matched them. Once
 * a batch of results is committed, this reads FM_EVENTS for each event name its new waits ask
 * for, from the earliest of those attempts' dispatch (less the clock-skew margin) up to now,
 * with an ordered consumer, and resumes each wait with the first event its filter accepts —
 * the live consumer's matching rule, restricted to events stored since its own attempt was
 * dispatched and after the event that resumed the step last. A wait resumes once, however a
 * catch-up and the live consumer race (resumeWaits checks the attempt). A wait whose catch-up
 * completed (whether or not it resumed it) is marked caught up on its row; one that failed is
 * logged and left parked and not caught up: the live consumer, a resume request and the timer
 * still end it, and the wait timer's sweep (wait-timer.ts) runs its catch-up again later — as it
 * does for waits whose engine died before catching them up.
 */
export function createEventCatchUp(env: CatchUpEnv): EventCatchUp {
  const skewMs = env.clockSkewMs ?? DEFAULT_CATCH_UP_CLOCK_SKEW_MS;
  const maxEvents = env.maxEvents ?? DEFAULT_CATCH_UP_MAX_EVENTS;

  const logFailure = (waits: ParkedEventWait[], err: unknown) => {
    for (const { executionId, stepId, token, eventName } of waits) {
      env.log.warn({ err: toError(err), executionId, stepId, token, event: eventName }, "event catch-up failed; the wait stays parked for new events, its resume token and its timer");
    }
  };

  /** The first event on one subject that resumes each of these waits (one name; trusted, or one region's). */
  async function scan(subject: string, waits: Scoped[]): Promise<Array<WaitToResume & { eventSeq: number }>> {
    const fromMs = Math.min(...waits.map((w) => w.fromMs));
    // One cheap look first: usually no event of the name came since (the common case, an event after the wait).
    const last = await env.jsm.streams.getMessage(env.stream, { last_by_subj: subject });
    if (!last || last.time.getTime() < fromMs || waits.every((w) => last.seq <= (w.afterSeq ?? 0))) return [];
    const consumer = await env.js.consumers.get(env.stream, {
      filter_subjects: subject,
      opt_start_time: new Date(fromMs).toISOString(),
      inactive_threshold: CONSUMER_INACTIVE_MS,
    });
    const eligible = (e: StoredEvent, w: Scoped) => e.storedAt.getTime() >= w.fromMs && e.seq > (w.afterSeq ?? 0);
    const taken = new Set<string>();
    const due: Array<WaitToResume & { eventSeq: number }> = [];
    try {
      let pending = (await consumer.info(true)).num_pending;
      let scanned = 0;
      while (pending > 0 && taken.size < waits.length && scanned < maxEvents) {
        // Never more than is pending: the fetch ends when they are in, not at its expiry.
        const batch = await consumer.fetch({ max_messages: Math.min(FETCH_BATCH, maxEvents - scanned, pending), expires: 1000 });
        const events: StoredEvent[] = [];
        let got = 0;
        for await (const msg of batch) {
          got++;
          pending = msg.info.pending;
          // The live consumer already said so about an unreadable event.
          const event = readEvent(msg, env, false);
          if (event) events.push(event);
        }
        if (got === 0) break;
        scanned += got;
        due.push(...(await matchEvents(events, waits, env.log, eligible, taken)));
      }
      if (pending > 0 && scanned >= maxEvents && taken.size < waits.length) {
        env.log.warn({ event: waits[0]!.eventName, subject, scanned, pending, waits: waits.length }, "event catch-up capped: later events of this name were not looked at (the waits stay parked for new ones)");
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return due;
  }

  return async (parked) => {
    if (parked.length === 0) return 0;
    try {
      const dispatched = await dispatchTimesOf(env.db, parked.map((w) => ({ taskId: `${w.executionId}/${w.stepId}`, attempt: w.attempt })));
      // A wait's events come on two subjects: trusted publishers' and its own region's workers'.
      const bySubject = new Map<string, Scoped[]>();
      for (const w of parked) {
        const at = dispatched.get(`${w.executionId}/${w.stepId}:${w.attempt}`);
        if (!at) {
          logFailure([w], new Error(`no attempt row for ${w.executionId}/${w.stepId} attempt ${w.attempt}`));
          continue;
        }
        const scoped = { ...w, fromMs: at.getTime() - skewMs };
        const subjects = [env.subjects.event(w.eventName), ...(w.region ? [env.subjects.regionEvent(w.region, w.eventName)] : [])];
        for (const subject of subjects) bySubject.set(subject, [...(bySubject.get(subject) ?? []), scoped]);
      }
      // A wait whose two scans fail is logged once, with the first error.
      const failed = new Map<string, { wait: ParkedEventWait; err: unknown }>();
      const found = await Promise.all(
        [...bySubject].map(([subject, waits]) =>
          scan(subject, waits).catch((err: unknown) => {
            for (const wait of waits) if (!failed.has(wait.token)) failed.set(wait.token, { wait, err });
            return [];
          }),
        ),
      );
      for (const { wait, err } of failed.values()) logFailure([wait], err);
      // The waits whose scans all completed: caught up once what they found is committed.
      const scanned = parked.filter((w) => !failed.has(w.token) && dispatched.has(`${w.executionId}/${w.stepId}:${w.attempt}`));
      // A wait one of whose scans failed is left for the sweep whole: the other scan's match may not be its first event.
      const due = earliestPerWait(found.flat()).filter((m) => !failed.has(m.token));
      let resumed = 0;
      if (due.length > 0) {
        const committed = await resumeWaits(env, due);
        env.relay.afterCommit(committed);
        committed.value.forEach((o, i) => {
          if (!o.resumed) return;
          resumed++;
          const { executionId, stepId, token, eventSeq } = due[i]!;
          env.log.info({ executionId, stepId, token, event: due[i]!.cause.event?.name, eventSeq }, "wait resumed by an event that came before it was recorded");
        });
      }
      // Resumed rows are gone already; the rest are done: only events from now on (the live consumer's) can resume them.
      await markCaughtUp(env.db, scanned).catch((err: unknown) =>
        env.log.warn({ err: toError(err), waits: scanned.length }, "event catch-up done but not recorded; the sweep will run it again"),
      );
      return resumed;
    } catch (err) {
      logFailure(parked, err);
      return 0;
    }
  };
}

/** Of a wait's matches on its two subjects, the event stored first (the one the live consumer would have taken). */
function earliestPerWait(matches: Array<WaitToResume & { eventSeq: number }>): Array<WaitToResume & { eventSeq: number }> {
  const first = new Map<string, WaitToResume & { eventSeq: number }>();
  for (const m of matches) {
    const held = first.get(m.token);
    if (!held || m.eventSeq < held.eventSeq) first.set(m.token, m);
  }
  return [...first.values()];
}
