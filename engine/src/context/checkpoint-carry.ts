import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type Logger, type Names, STEP_KEYS, toError } from "@flowmonkey/shared";

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

/** Longest a look for a step's checkpoints may take before the attempt is published without it. */
const LOOK_TIMEOUT_MS = 2000;

/**
 * Checkpoints are kept per region (`<region>.<executionId>.<slot>`, STEP_KEYS) so that a region's
 * workers may be granted their region's keys only. A step's later attempt — a retry, or the run
 * after a pause or wait — may be sent to another region than the run that saved the checkpoint
 * (failover, least-busy routing); its worker could not read the other region's key. So before
 * such an attempt is published to `region`, the engine (which may read every key) copies the
 * step's newest checkpoint entry from whichever region holds it into `region`'s key: a saved
 * state is copied, a newer clear is copied as a delete. A first attempt has nothing to carry and
 * costs nothing; a later one costs a look at the bucket (one ordered consumer, last entry per
 * key). A look or copy that fails is logged and the attempt goes out anyway: it then starts from
 * the checkpoint its region has (as a run whose checkpoint expired would). Only the regions the
 * step's attempts were sent to (`regionsRunIn`, the engine's task rows) are copied from: a
 * worker may write any key of its own region, and a key it made up for a step that never ran
 * there must not become another region's checkpoint.
 */
export function createCheckpointCarry(o: {
  js: JetStreamClient;
  names: Names;
  log: Logger;
  regionsRunIn: (taskId: string, attempt: number) => Promise<string[]>;
}): CheckpointCarry {
  const bucket = o.names.buckets.checkpoints;
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  let kv: Promise<KV> | undefined;
  const open = () =>
    (kv ??= new Kvm(o.js).open(bucket, { allow_direct: true }).catch((err: unknown) => {
      kv = undefined;
      throw err;
    }));

  return async (region, task) => {
    if (!mayFindCheckpoint(task)) return;
    const slot = task.item ? `${task.stepId}.item-${task.item.run}-${task.item.index}` : task.stepId;
    const ids = { executionId: task.executionId, stepId: task.stepId, attempt: task.attempt, region };
    try {
      const ran = new Set(await o.regionsRunIn(task.taskId, task.attempt));
      const regionOf = (subject: string) => subject.slice(prefix.length).split(".")[0]!;
      const entries = (await latestPerKey(o.js, stream, `${prefix}${STEP_KEYS.anyRegion(task.executionId, slot)}`)).filter((e) => ran.has(regionOf(e.subject)));
      // Saved before keys carried a region (`<executionId>.<slot>`): a step paused or retrying across the upgrade.
      const legacy = await (await open()).get(`${task.executionId}.${slot}`);
      if (legacy) entries.push({ subject: `${prefix}${legacy.key}`, seq: legacy.revision, data: legacy.value, deleted: legacy.operation !== "PUT" });
      const newest = entries.reduce<StoredEntry | undefined>((a, e) => (a && a.seq > e.seq ? a : e), undefined);
      const key = STEP_KEYS.key(region, task.executionId, slot);
      const target = `${prefix}${key}`;
      // Nothing saved, or the newest entry is already this region's: nothing to carry.
      if (!newest || newest.subject === target) return;
      const own = entries.find((e) => e.subject === target);
      if (newest.deleted) {
        if (own && !own.deleted) await (await open()).delete(key);
        return;
      }
      await (await open()).put(key, newest.data);
      o.log.info({ ...ids, from: regionOf(newest.subject) }, "carried the step's checkpoint to the region of its next attempt");
    } catch (err) {
      o.log.warn({ ...ids, err: toError(err) }, "could not carry the step's checkpoint to the region of its next attempt; it starts from what that region holds");
    }
  };
}

interface StoredEntry {
  subject: string;
  seq: number;
  data: Uint8Array;
  deleted: boolean;
}

/** The last stored message of each subject matching `filter`, deletes and purges included. */
async function latestPerKey(js: JetStreamClient, stream: string, filter: string): Promise<StoredEntry[]> {
  const consumer = await js.consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.LastPerSubject });
  try {
    let pending = (await consumer.info(true)).num_pending;
    const entries: StoredEntry[] = [];
    while (pending > 0) {
      // Never more than is pending: the fetch ends when they are in, not at its expiry.
      const batch = await consumer.fetch({ max_messages: pending, expires: LOOK_TIMEOUT_MS });
      let got = 0;
      for await (const m of batch) {
        got++;
        pending = m.info.pending;
        entries.push(entryOf(m));
      }
      if (got === 0) throw new Error(`the checkpoint bucket did not deliver ${pending} entries within ${LOOK_TIMEOUT_MS} ms`);
    }
    return entries;
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

function entryOf(m: JsMsg): StoredEntry {
  const op = m.headers?.get("KV-Operation");
  return { subject: m.subject, seq: m.seq, data: m.data, deleted: op === "DEL" || op === "PURGE" };
}
