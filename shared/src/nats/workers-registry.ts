import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { FmError } from "../errors/fm-error.js";
import { WorkerEntry, type WorkersReply } from "../protocol/api.js";
import { type Names, WORKER_KEYS } from "../protocol/names.js";
import type { Logger } from "../runtime/log.js";

/**
 * Live workers from KV `fm_workers`: each worker refreshes its entry every 10 s and the bucket's
 * TTL drops the entry of one that died. An entry that does not parse (a newer worker's shape,
 * a hand-written key) is skipped with a warning rather than failing the whole list.
 */
export async function listWorkers(nc: NatsConnection, names: Names, log: Logger): Promise<WorkersReply> {
  let kv;
  try {
    kv = await new Kvm(nc).open(names.buckets.workers);
    await kv.status(); // open() is lazy; a missing bucket shows here
  } catch (thrown) {
    throw new FmError("UNAVAILABLE", `the worker registry ${names.buckets.workers} is not there; has an engine provisioned the mesh?`, { cause: thrown });
  }
  const workers: WorkersReply["workers"] = [];
  for await (const key of await kv.keys()) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    let json: unknown;
    try {
      json = entry.json();
    } catch {
      json = undefined; // not JSON: reported below like any other unreadable entry
    }
    const parsed = WorkerEntry.safeParse(json);
    if (!parsed.success) {
      log.warn({ key }, "skipping an unreadable worker registry entry");
      continue;
    }
    if (!WORKER_KEYS.holds(key, parsed.data)) {
      log.warn({ key, workerId: parsed.data.workerId, region: parsed.data.region }, "skipping a worker registry entry not under <region>.<workerId>");
      continue;
    }
    workers.push({ ...parsed.data, updatedAt: entry.created.toISOString() });
  }
  workers.sort((a, b) => a.region.localeCompare(b.region) || a.workerId.localeCompare(b.workerId));
  return { workers };
}
