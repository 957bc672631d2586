import { decode, type BlobStore } from "@flowmonkey/shared";
import type { KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import type { CheckpointKv } from "../plumbing/checkpoints.js";
import type { EventPublisher } from "../plumbing/events.js";

/** Something a handler did that a local replay records instead of sending to the mesh. */
export type DryRunEffect =
  | { kind: "progress"; subject: string; body: unknown }
  | { kind: "event"; subject: string; body: unknown }
  | { kind: "checkpoint.save"; key: string }
  | { kind: "checkpoint.clear"; key: string };

export type EffectSink = (effect: DryRunEffect) => void;

const AnyJson = z.unknown();
const asJson = (data: Uint8Array): unknown => {
  try {
    return decode(data, AnyJson, { what: "dry-run message" });
  } catch {
    return `<${data.byteLength} bytes>`;
  }
};

/** Progress "publishes" that go to the sink: a replayed step's dashboard must not show a second run. */
export function recordingPublisher(sink: EffectSink): Pick<NatsConnection, "publish"> {
  return { publish: (subject: string, data?: Uint8Array | string) => sink({ kind: "progress", subject, body: typeof data === "string" ? data : data ? asJson(data) : null }) };
}

/** ctx.events.emit that goes to the sink: a replay must not resume someone's waiting step. */
export function recordingEvents(sink: EffectSink): EventPublisher {
  return {
    publish: (subject, data) => {
      sink({ kind: "event", subject, body: asJson(data) });
      return Promise.resolve();
    },
  };
}

/**
 * The checkpoint bucket, copy-on-write: reads see the real checkpoint (a handler resumes from
 * where the pool left it, as a redelivery would) until the replay writes; writes and deletes
 * stay in memory, so the pool's next attempt finds its checkpoint untouched.
 */
export function copyOnWriteKv(real: CheckpointKv | undefined, sink: EffectSink): CheckpointKv {
  const written = new Map<string, Uint8Array | null>();
  return {
    get: async (key) => {
      if (!written.has(key)) return real ? real.get(key) : null;
      const value = written.get(key);
      // Only `operation` and `value` are read by the checkpoint API; the rest of an entry does not exist in memory.
      return value ? ({ key, value, operation: "PUT" } as unknown as KvEntry) : null;
    },
    put: (key, data) => {
      written.set(key, typeof data === "string" ? new TextEncoder().encode(data) : data);
      sink({ kind: "checkpoint.save", key });
      return Promise.resolve(0);
    },
    delete: (key) => {
      written.set(key, null);
      sink({ kind: "checkpoint.clear", key });
      return Promise.resolve();
    },
  };
}

/** The blob bucket, copy-on-write in the same way (large checkpoints); reading an offloaded context reads the real blobs. */
export function copyOnWriteBlobs(real: BlobStore): BlobStore {
  const written = new Map<string, Uint8Array | null>();
  return {
    bucket: real.bucket,
    put: (name, data) => {
      written.set(name, data);
      return Promise.resolve(data.byteLength);
    },
    get: async (name, options) => (written.has(name) ? (written.get(name) ?? undefined) : real.get(name, options)),
    has: async (name) => (written.has(name) ? written.get(name) !== null : real.has(name)),
    delete: (name) => {
      written.set(name, null);
      return Promise.resolve();
    },
  };
}
