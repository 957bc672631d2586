import {
  encodeContextKeys,
  splitContext,
  toError,
  type BlobRef,
  type BlobStore,
  type ContextBlob,
  type JsonObject,
  type Logger,
  type Subjects,
  type Task,
} from "@flowmonkey/shared";
import type { Changes } from "../execution/changes.js";
import type { OutboxMessage } from "../store/outbox.js";

export const DEFAULT_CONTEXT_INLINE_MAX_BYTES = 256 * 1024;
/** A key up to this size stays inline in the manifest: fetching it on its own would cost more than carrying it. */
const INLINE_KEY_MAX_BYTES = 1024;
const INLINE_KEYS_TOTAL_MAX_BYTES = 64 * 1024;
/** Blob names remembered as stored; an LRU, so a long-running engine's memory stays bounded. */
const DEFAULT_REMEMBERED_BLOBS = 10_000;
/** How long a name is trusted as stored without asking the store (well under the cleanup sweep's grace). */
const REMEMBER_FOR_MS = 10 * 60_000;
/** Blobs stored at once for one context (a context with many large keys). */
const UPLOAD_CONCURRENCY = 8;

export interface ContextOffloadOptions {
  /**
   * The blob bucket of a region (`fm_blobs_<region>`), opened by its first large context: a
   * task's context goes to the bucket of the region it is sent to, the only one its workers read.
   */
  blobsOf: (region: string) => BlobStore;
  subjects: Subjects;
  log: Logger;
  /** A task whose context's JSON is larger than this carries a reference instead. */
  inlineMaxBytes: number;
  rememberedBlobs?: number;
}

export interface ContextOffloadStats {
  /** Tasks that left with a contextRef. */
  offloadedTasks: number;
  /** Blobs this engine stored. */
  storedBlobs: number;
  /** Blobs it found already stored (by itself or another replica) and did not send again. */
  reusedBlobs: number;
}

export interface ContextOffload {
  /**
   * Replaces the context of every outgoing task in `out` whose context is over the threshold
   * by `{}` + a contextRef, storing the blobs that are not stored yet. Runs before the outbox
   * row is written, so the row (and a republish of it) carries the reference too.
   */
  offloadTasks(out: Changes): Promise<void>;
  /**
   * Offloads one task's inline context whatever its size (the task as a whole would not fit
   * the server's max_payload). False when there is nothing to offload (empty, or already a reference).
   */
  offloadTask(executionId: string, message: OutboxMessage, out: Changes): Promise<boolean>;
  stats(): ContextOffloadStats;
}

export function createContextOffload(options: ContextOffloadOptions): ContextOffload {
  const { subjects, log, inlineMaxBytes } = options;
  const stored = new RememberedNames(options.rememberedBlobs ?? DEFAULT_REMEMBERED_BLOBS, REMEMBER_FOR_MS);
  const stats: ContextOffloadStats = { offloadedTasks: 0, storedBlobs: 0, reusedBlobs: 0 };

  /** Stores one blob unless it is known (or found) to be stored. Content-addressed: what is there is what we would write. */
  async function ensureStored(blobs: BlobStore, blob: ContextBlob): Promise<void> {
    const key = `${blobs.bucket}/${blob.name}`;
    if (stored.has(key)) return;
    if (await blobs.has(blob.name)) {
      stats.reusedBlobs++;
    } else {
      await blobs.put(blob.name, blob.json);
      stats.storedBlobs++;
    }
    stored.add(key);
  }

  async function offloadContext(executionId: string, region: string, context: JsonObject, out: Changes, force = false): Promise<BlobRef | undefined> {
    const encoded = encodeContextKeys(context);
    if (encoded.bytes <= inlineMaxBytes && !force) return undefined;
    const blobs = options.blobsOf(region);
    const split = splitContext(encoded, { executionId, inlineKeyMaxBytes: INLINE_KEY_MAX_BYTES, inlineTotalMaxBytes: INLINE_KEYS_TOTAL_MAX_BYTES });
    const { manifestBlob } = split;
    // A known manifest means its key blobs were stored before it: nothing to check key by key.
    if (!stored.has(`${blobs.bucket}/${manifestBlob.name}`)) {
      for (let i = 0; i < split.keyBlobs.length; i += UPLOAD_CONCURRENCY) {
        await Promise.all(split.keyBlobs.slice(i, i + UPLOAD_CONCURRENCY).map((blob) => ensureStored(blobs, blob)));
      }
      await ensureStored(blobs, manifestBlob);
      // Recorded with the transaction that references them: the cleanup sweep deletes them when the execution has ended.
      for (const blob of [...split.keyBlobs, manifestBlob]) out.contextBlobs.push({ executionId, bucket: blobs.bucket, name: blob.name });
      log.debug({ executionId, region, contextBytes: encoded.bytes, blobs: split.keyBlobs.length, manifest: manifestBlob.name }, "context offloaded");
    }
    return { bucket: blobs.bucket, name: manifestBlob.name, size: manifestBlob.json.byteLength, encoding: "gzip", digest: `sha256:${manifestBlob.name.split("/").at(-1)}` };
  }

  return {
    async offloadTasks(out) {
      // One context object is shared by all tasks an execution dispatches in one transaction (a
      // fan-out): measured and stored once per region the tasks go to.
      const refs = new Map<string, Promise<BlobRef | undefined>>();
      const ids = new Map<JsonObject, number>();
      for (const [executionId, effects] of out.effects) {
        const messages: OutboxMessage[] = [
          ...effects.messages,
          ...effects.delayed.flatMap((d) => d.messages),
          ...effects.laneDispatches.flatMap((d) => d.messages),
        ];
        for (const message of messages) {
          const region = subjects.parseTask(message.subject)?.region;
          if (!region || !isTask(message.body) || message.body.contextRef) continue;
          const task = message.body;
          if (!ids.has(task.context)) ids.set(task.context, ids.size);
          const key = `${ids.get(task.context)!}@${region}`;
          let ref = refs.get(key);
          if (!ref) refs.set(key, (ref = offloadContext(executionId, region, task.context, out)));
          const contextRef = await ref.catch((err: unknown) => {
            // The transaction fails (and its batch is retried): a task must not go out without its context.
            log.warn({ err: toError(err), executionId }, "storing a large context in the blob store failed");
            throw err;
          });
          if (!contextRef) continue;
          message.body = { ...task, context: {}, contextRef } satisfies Task;
          stats.offloadedTasks++;
        }
      }
    },
    async offloadTask(executionId, message, out) {
      const task = message.body;
      const region = subjects.parseTask(message.subject)?.region;
      if (!region || !isTask(task) || task.contextRef || Object.keys(task.context).length === 0) return false;
      const contextRef = await offloadContext(executionId, region, task.context, out, true);
      if (!contextRef) return false;
      message.body = { ...task, context: {}, contextRef } satisfies Task;
      stats.offloadedTasks++;
      return true;
    },
    stats: () => ({ ...stats }),
  };
}

/** The engine's own outgoing task bodies (built by taskOf), told apart from events by shape. */
function isTask(body: unknown): body is Task {
  return typeof body === "object" && body !== null && "taskId" in body && "context" in body && typeof body.context === "object" && body.context !== null;
}

/**
 * A bounded set of names, least recently used out first, each trusted for `maxAgeMs`: after
 * that the store is asked again, so a blob deleted meanwhile (the cleanup sweep of an ended
 * execution that is then replayed) is stored again rather than referenced while gone.
 */
class RememberedNames {
  readonly #names = new Map<string, number>();
  constructor(
    readonly max: number,
    readonly maxAgeMs: number,
  ) {}

  has(name: string): boolean {
    const at = this.#names.get(name);
    if (at === undefined) return false;
    // Refresh the order, not the age: a Map iterates in insertion order, so the oldest is first.
    this.#names.delete(name);
    if (Date.now() - at > this.maxAgeMs) return false;
    this.#names.set(name, at);
    return true;
  }

  add(name: string): void {
    this.#names.delete(name);
    this.#names.set(name, Date.now());
    if (this.#names.size > this.max) this.#names.delete(this.#names.keys().next().value!);
  }
}
