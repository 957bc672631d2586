import type { JsMsg } from "@nats-io/jetstream";
import type { Logger, Subjects } from "@flowmonkey/shared";
import { processIsolated } from "../consumers/isolate.js";
import { rejectionRecorder, retryLater } from "../consumers/redelivery.js";
import type { Relay } from "../outbox/relay.js";
import type { ApplyEnv } from "../results/apply-result.js";
import { recordRejections, type Rejection } from "../store/rejections.js";
import { findWaitsForEvents } from "../store/wait-tokens.js";
import { matchEvents, readEvent, type StoredEvent } from "./event-match.js";
import { resumeWaits } from "./resume-waits.js";

export interface EventEnv extends Pick<ApplyEnv, "db" | "registry" | "subjects" | "breakers" | "rates" | "vault"> {
  subjects: Subjects;
  relay: Relay;
  log: Logger;
  maxMessageBytes: number;
}

/**
 * Resumes the steps waiting for events (`resumeOn`) from FM_EVENTS, shared by the engine
 * replicas through one durable consumer. One event resumes every step that waits for its name
 * and whose filter accepts it; an event nobody waits for is simply acknowledged. Undecodable
 * events (bad JSON, wrong shape, text the store refuses) are logged, recorded as rejections and
 * acknowledged: FM_EVENTS is everyone's stream, not only the engine's.
 * Events that came before a wait was recorded are caught up when it is (event-catch-up.ts).
 */
export function createEventProcessor(env: EventEnv) {
  const process = async (msgs: JsMsg[]) => {
    const unreadable: Rejection[] = [];
    const events = msgs.map((msg) => readEvent(msg, env, true, unreadable)).filter((e): e is StoredEvent => e !== undefined);
    const waits = await findWaitsForEvents(env.db, [...new Set(events.map((e) => e.event.name))]);
    const due = await matchEvents(events, waits, env.log);
    if (due.length > 0) {
      const committed = await resumeWaits(env, due);
      env.relay.afterCommit(committed);
      const resumed = committed.value.filter((o) => o.resumed).length;
      env.log.debug({ events: events.length, resumed }, "events resumed waiting steps");
    }
    // Recorded like any refused input (rare: only bad events cost this write), once the rest is
    // done: a batch that fails before this is retried item by item and records them then.
    await recordRejections(env.db, unreadable);
    for (const msg of msgs) msg.ack();
  };
  const recordGiveUp = rejectionRecorder(env.db);
  return (msgs: JsMsg[]) => processIsolated(msgs, process, (msg, err) => retryLater(msg, err, env.log, recordGiveUp));
}
