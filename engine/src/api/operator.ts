import type { JetStreamManager } from "@nats-io/jetstream";
import { FmError, readQueueStats, toError, type HealthReply, type Names, type QueuesReply, type QueuesRequest } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { pingStore } from "../store/counts.js";

/** fm.api.health: the store really answers (SELECT 1), not just that this process is up. */
export async function healthOf(db: Db, version: string): Promise<HealthReply> {
  const started = performance.now();
  try {
    await pingStore(db);
  } catch (thrown) {
    throw new FmError("UNAVAILABLE", `the engine's store does not answer: ${toError(thrown).message}`, { cause: thrown });
  }
  return { status: "ok", store: db.kind === "pglite" ? "pglite" : "postgres", storeLatencyMs: Math.round((performance.now() - started) * 100) / 100, version };
}

/** fm.api.queues: the pool consumers of this engine's JetStream domain, read now. */
export async function queuesOf(jsm: JetStreamManager, names: Names, req: QueuesRequest): Promise<QueuesReply> {
  const stats = await readQueueStats(jsm, names);
  return { queues: stats.filter((q) => (!req.region || q.region === req.region) && (!req.handler || q.handler === req.handler)) };
}
