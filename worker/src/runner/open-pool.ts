import { abortableDelay, ensureTaskPool, FmError, type Logger, type Names, type Priority, toError } from "@flowmonkey/shared";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { Heartbeat } from "./heartbeat.js";
import { poolLabel, type PoolHooks, TaskPool } from "./task-consumer.js";

export interface OpenPoolOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: Names;
  region: string;
  handler: string;
  priority: Priority;
  /**
   * [] for the handler's plain pool; else the worker's full capability set: the pool of the
   * handler's tasks whose step requires capabilities and that routing gave to workers with exactly these.
   */
  capabilities: readonly string[];
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
      const info = await ensureTaskPool(o.jsm, o.names, o.region, o.handler, o.priority, { ackWaitMs: o.heartbeatTimeoutMs }, o.capabilities);
      return { info, consumer: await o.js.consumers.get(o.names.streams.tasks, info.name) };
    } catch (cause) {
      const why = toError(cause).message;
      throw new FmError("UNAVAILABLE", `cannot open the ${poolLabel(o.handler, o.capabilities)} (${o.priority}) task pool of ${o.region} on stream ${o.names.streams.tasks} (${why}); is the mesh provisioned?`, { cause });
    }
  };
  const { info, consumer } = await untilProvisioned(ensure, o);
  return new TaskPool({
    handler: o.handler,
    priority: o.priority,
    capabilities: o.capabilities,
    consumer,
    consumerName: info.name,
    heartbeat: Heartbeat.fromConsumerInfo(info),
    expiresMs: o.fetchExpiresMs,
    recover: async () => (await ensure()).consumer,
    hooks: o.hooks,
    log: o.log,
  });
}

/** How long a worker started before the engine waits for the engine to create the streams. */
export const WAIT_FOR_PROVISIONING_MS = 60_000;

/**
 * A worker may start before the engine has provisioned the streams (compose, the dev mesh):
 * wait for them, saying so, instead of dying. Any other error fails at once.
 */
async function untilProvisioned<T>(open: () => Promise<T>, o: OpenPoolOptions): Promise<T> {
  const deadline = Date.now() + WAIT_FOR_PROVISIONING_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      const cause = err instanceof FmError ? err.cause : err;
      const notYet = cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.StreamNotFound;
      if (!notYet || Date.now() >= deadline) throw err;
      if (attempt === 0) o.log.warn({ stream: o.names.streams.tasks, handler: o.handler, capabilities: o.capabilities }, "waiting for the engine to provision the mesh");
      await abortableDelay(Math.min(2000, 100 * 2 ** attempt));
    }
  }
}
