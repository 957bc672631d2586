import { BLOB_NAMES, CheckpointEnvelope, STEP_KEYS, decode, encode, FmError, toError, type BlobStore, type Logger } from "@flowmonkey/shared";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import type { CheckpointApi } from "../sdk/handler-context.js";

/** Checkpoints up to this size live in KV; larger ones go gzip'd to the blob store, with a reference in KV. */
export const INLINE_CHECKPOINT_MAX_BYTES = 1024 * 1024;

/** Where checkpoints go; one per worker, shared by its tasks. An undefined KV: the API says so when used. */
/** The checkpoint bucket as far as checkpoints use it: a local replay passes a copy-on-write view. */
export type CheckpointKv = Pick<KV, "get" | "put" | "delete">;

export interface CheckpointSink {
  kv: CheckpointKv | undefined;
  /** Opened on first use: only large checkpoints need it. */
  blobs: BlobStore;
}

/** What a KV entry holds: the state itself, or where its gzip'd copy is (the contract's CheckpointEnvelope). */
const Envelope = CheckpointEnvelope;

/**
 * A step's checkpoint, shared by all its attempts and deliveries: a redelivered or retried task
 * loads what the previous run saved. Keyed `<region>.<executionId>.<stepId>` (STEP_KEYS; the
 * region of the worker, whose permissions cover only its region's keys; a map item's stepId
 * carries its run and index: `<stepId>.item-<run>-<index>`). An attempt sent to another region
 * finds the checkpoint there: the engine carries it over as it publishes the attempt. The
 * bucket's TTL (7 days) keeps it for a while after the task ends. A save counts as a heartbeat.
 */
export function createCheckpointApi(sink: CheckpointSink, ids: { region: string; executionId: string; stepId: string }, working: () => void, log: () => Logger): CheckpointApi {
  const key = STEP_KEYS.key(ids.region, ids.executionId, ids.stepId);
  const blobName = BLOB_NAMES.checkpoint(ids.executionId, ids.stepId);
  const kv = () => {
    if (!sink.kv) throw new FmError("UNAVAILABLE", "the checkpoint bucket is not open on this worker");
    return sink.kv;
  };

  return {
    async save(state) {
      working();
      const data = encode({ state: state ?? null });
      if (data.byteLength <= INLINE_CHECKPOINT_MAX_BYTES) {
        await kv().put(key, data);
        return;
      }
      await sink.blobs.put(blobName, data);
      await kv().put(key, encode({ blob: blobName, bytes: data.byteLength }));
    },

    async load() {
      const entry = await kv().get(key);
      if (!entry || entry.operation !== "PUT" || entry.value.byteLength === 0) return undefined;
      const envelope = decode(entry.value, Envelope, { maxBytes: INLINE_CHECKPOINT_MAX_BYTES + 1024, what: `checkpoint ${key}` });
      if ("state" in envelope) return envelope.state;
      const data = await sink.blobs.get(envelope.blob, { maxBytes: envelope.bytes });
      if (!data) throw new FmError("INTERNAL", `checkpoint ${key} points at blob ${envelope.blob}, which is gone`);
      const inner = decode(data, z.object({ state: z.unknown() }), { maxBytes: envelope.bytes + 1, what: `checkpoint ${key}` });
      return inner.state;
    },

    async clear() {
      const entry = await kv().get(key);
      await kv().delete(key);
      if (entry?.operation === "PUT" && entry.value.byteLength > 0 && "blob" in decode(entry.value, Envelope, { maxBytes: INLINE_CHECKPOINT_MAX_BYTES + 1024 })) {
        await sink.blobs.delete(blobName).catch((err: unknown) => log().debug({ err: toError(err) }, "large checkpoint already gone"));
      }
    },
  };
}
