import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { encode } from "../protocol/codec.js";
import type { Event } from "../protocol/messages/event.js";
import type { Subjects } from "../protocol/subjects.js";

/**
 * A custom event on `fm.events.<name>`, stored by FM_EVENTS before this resolves (a JetStream
 * publish, so a waiting step's `resumeOn` cannot miss it). Returns the stream sequence.
 */
export async function publishEvent(nc: NatsConnection, subjects: Subjects, name: string, event: Event, options: { msgId?: string } = {}): Promise<{ stream: string; seq: number; duplicate: boolean }> {
  const ack = await jetstream(nc).publish(subjects.event(name), encode(event), options.msgId ? { msgID: options.msgId } : {});
  return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
}
