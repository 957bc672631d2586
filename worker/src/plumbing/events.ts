import { assertStorable, encode, type Event, type Subjects } from "@flowmonkey/shared";
import type { EventsApi } from "../sdk/handler-context.js";

/** What ctx.events needs of JetStream: a worker passes its client, a local replay a recorder. */
export interface EventPublisher {
  publish(subject: string, data: Uint8Array): Promise<unknown>;
}

/**
 * `ctx.events.emit(name, data)`: a JetStream publish on `fm.events.~<region>.<name>` (stream
 * FM_EVENTS) carrying the execution and step it came from. Resolves once the stream has stored
 * it. The worker's region is in the subject: it may resume only waits that parked in its region.
 */
export function createEventsApi(js: EventPublisher, subjects: Subjects, ids: { region: string; executionId: string; stepId: string }): EventsApi {
  return {
    async emit(name, data) {
      const event: Event = { data: data ?? null, executionId: ids.executionId, stepId: ids.stepId, at: new Date().toISOString() };
      // The engine refuses (and records) an event it could not store; the handler hears it here instead, as UNSUPPORTED_JSON.
      assertStorable(event.data, `data of event ${name}`);
      await js.publish(subjects.regionEvent(ids.region, name), encode(event));
    },
  };
}
