import type { JetStreamClient } from "@nats-io/jetstream";
import { type KvEntry, Kvm } from "@nats-io/kv";
import { CheckpointEnvelope, decode, FmError, type Logger, type Names, onceUntilFailure, STEP_KEYS, toError } from "@flowmonkey/shared";
import type { BlobBuckets } from "./blob-buckets.js";

/** What of a task says whose checkpoint it may load. */
export interface CarriedTask {
  taskId: string;
  executionId: string;
  stepId: string;
  attempt: number;
  item?: { index: number; run: number } | undefined;
  resume?: unknown;
}

export type CheckpointCarry = (region: string, task: CarriedTask) => Promise<void>;

/** Only a later attempt or a resumed run can find a checkpoint an earlier run saved. */
export function mayFindCheckpoint(task: CarriedTask): boolean {
  return task.attempt > 1 || task.resume !== undefined;
}

/**
 * Checkpoints are kept per region (`<region>.<executionId>.<slot>`, STEP_KEYS) so that a region's
 * workers may be granted their region's keys only. A step's later attempt — a retry, or the run
 * after a pause or wait — may be sent to another region than the run that saved the checkpoint
 * (failover, least-busy routing); its worker could not read the other region's key. So before
 * such an attempt is published to `region`, the engine (which may read every key) copies the
 * step's newest checkpoint entry into `region`'s key: a saved state is copied, a newer clear is
 * copied as a delete. Only the keys of the regions the step's attempts were sent to
 * (`regionsRunIn`, the engine's task rows) are read, one direct get each, with the key from
 * before keys carried a region (`<executionId>.<slot>`: a step paused or retrying across the
 * upgrade): a worker may write any key of its own region, and a key it made up for a step that
 * never ran there must not become another region's checkpoint. A first attempt has nothing to
 * carry and costs nothing. A look or copy that fails is logged and the attempt goes out anyway:
 * it then starts from the checkpoint its region has (as a run whose checkpoint expired would).
 */
export function createCheckpointCarry(o: {
  js: JetStreamClient;
  names: Names;
  log: Logger;
  /** Where a checkpoint too large for KV is (its envelope names the blob): the saving region's bucket, copied too. */
  blobs: BlobBuckets;
  regionsRunIn: (taskId: string, attempt: number) => Promise<string[]>;
}): CheckpointCarry {
  const bucket = o.names.buckets.checkpoints;
  // Direct gets: every read names its key in the subject.
  const open = onceUntilFailure(() => new Kvm(o.js).open(bucket, { allow_direct: true }));

  /**
   * A large checkpoint's envelope names a blob in the bucket of the region that saved it
   * (`savedIn`; undefined for a key from before keys had a region: the shared bucket).
   */
  async function copyBlobOf(entry: KvEntry, savedIn: string | undefined, region: string): Promise<void> {
    const envelope = decode(entry.value, CheckpointEnvelope, { what: `checkpoint ${entry.key}` });
    if (!("blob" in envelope)) return;
    const from = savedIn ? o.blobs.ofRegion(savedIn) : o.blobs.named("");
    const data = await from.get(envelope.blob);
    if (!data) throw new FmError("INTERNAL", `checkpoint blob ${envelope.blob} is missing from ${from.bucket}`);
    await o.blobs.ofRegion(region).put(envelope.blob, data);
  }

  return async (region, task) => {
    if (!mayFindCheckpoint(task)) return;
    const slot = STEP_KEYS.checkpointSlot(task.stepId, task.item);
    const ids = { executionId: task.executionId, stepId: task.stepId, attempt: task.attempt, region };
    try {
      const store = await open();
      const target = STEP_KEYS.key(region, task.executionId, slot);
      const sources = (await o.regionsRunIn(task.taskId, task.attempt)).filter((r) => r !== region).map((r) => STEP_KEYS.key(r, task.executionId, slot));
      const legacy = `${task.executionId}.${slot}`;
      const [own, ...found] = await Promise.all([target, ...sources, legacy].map((key) => store.get(key)));
      // The newest entry of the step wherever it is (revisions are the bucket's sequence numbers).
      const newest = [own, ...found].reduce<KvEntry | null | undefined>((a, e) => (e && (!a || e.revision > a.revision) ? e : a), undefined);
      if (!newest || newest === own) return;
      if (newest.operation !== "PUT") {
        if (own?.operation === "PUT") await store.delete(target);
        return;
      }
      // Every key but the legacy one starts with its region (a map item's slot has dots of its own).
      await copyBlobOf(newest, newest.key === legacy ? undefined : newest.key.slice(0, newest.key.indexOf(".")), region);
      await store.put(target, newest.value);
      o.log.info({ ...ids, from: newest.key }, "carried the step's checkpoint to the region of its next attempt");
    } catch (err) {
      o.log.warn({ ...ids, err: toError(err) }, "could not carry the step's checkpoint to the region of its next attempt; it starts from what that region holds");
    }
  };
}
