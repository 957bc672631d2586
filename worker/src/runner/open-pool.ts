import { ensureTaskPool, FmError, type Logger, type Names, toError } from "@flowmonkey/shared";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { Heartbeat } from "./heartbeat.js";
import { type PoolHooks, TaskPool } from "./task-consumer.js";

export interface OpenPoolOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  region: string;
  handler: string;
  /** Written to the consumer as its ack_wait. */
  heartbeatTimeoutMs: number;
  fetchExpiresMs: number;
  hooks: PoolHooks;
  log: Logger;
}

/**
 * Ensures the pool's durable consumer (shared by every worker of the pool) and binds a TaskPool
 * to it. The heartbeat interval comes from the ack_wait the server reports back, not from our
 * option, so the two cannot drift (STYLE habit 7).
 */
export async function openTaskPool(o: OpenPoolOptions): Promise<TaskPool> {
  const ensure = async () => {
    try {
      const info = await ensureTaskPool(o.jsm, o.names, o.region, o.handler, { ackWaitMs: o.heartbeatTimeoutMs });
      return { info, consumer: await o.js.consumers.get(o.names.streams.tasks, info.name) };
    } catch (cause) {
      const why = toError(cause).message;
      throw new FmError("UNAVAILABLE", `cannot open the ${o.handler} task pool of ${o.region} on stream ${o.names.streams.tasks} (${why}); is the mesh provisioned?`, { cause });
    }
  };
  const { info, consumer } = await ensure();
  return new TaskPool({
    handler: o.handler,
    consumer,
    heartbeat: Heartbeat.fromConsumerInfo(info),
    expiresMs: o.fetchExpiresMs,
    recover: async () => (await ensure()).consumer,
    hooks: o.hooks,
    log: o.log,
  });
}
