/**
 * BullMQ as a peer of the mesh in `npm run bench`: the same 3 sequential echo steps per flow
 * as a 3-queue chain on Redis (AOF, everysec), its worker in its own process (concurrency per
 * queue = the mesh worker's), completion learned from the last queue's QueueEvents — what a
 * BullMQ user would write. Driven through the same phases by the same driver.
 */
import { Queue, QueueEvents } from "bullmq";
import { spawnChild, type ChildHandle } from "../child-host.js";
import type { FlowSystem } from "../driver.js";
import { BULLMQ_STEPS, queueName } from "./bullmq-protocol.js";
import { startRedis } from "./redis-server.js";

export interface PeerSystem extends FlowSystem {
  /** Process ids to count CPU for: its worker and its server. */
  pids: Record<string, number[]>;
  close(): Promise<void>;
}

export async function startBullmq(redisBin: string, concurrency: number): Promise<PeerSystem> {
  const redis = await startRedis(redisBin);
  const connection = { host: "127.0.0.1", port: redis.port };
  let worker: ChildHandle | undefined;
  const first = new Queue(queueName(1), { connection });
  const events = new QueueEvents(queueName(BULLMQ_STEPS), { connection });
  try {
    await events.waitUntilReady();
    worker = await spawnChild("bullmq worker", "./peers/bullmq-worker-proc.ts", { REDIS_PORT: String(redis.port), BENCH_CONCURRENCY: String(concurrency) });
  } catch (err) {
    await Promise.allSettled([events.close(), first.close()]);
    await redis.stop();
    throw err;
  }
  const suffix = `-s${BULLMQ_STEPS}`;
  const system: PeerSystem = {
    pids: { "bullmq-worker": [worker.pid], redis: [redis.pid] },
    onDone: () => undefined,
    start: (id) => first.add("step", { id }, { jobId: `${id}-s1`, removeOnComplete: true, removeOnFail: true }),
    async close() {
      await Promise.allSettled([worker?.stop(), events.close(), first.close()]);
      await redis.stop();
    },
  };
  events.on("completed", ({ jobId }) => {
    if (jobId.endsWith(suffix)) system.onDone(jobId.slice(0, -suffix.length), true);
  });
  events.on("failed", ({ jobId, failedReason }) => {
    if (jobId.endsWith(suffix)) system.onDone(jobId.slice(0, -suffix.length), false, failedReason);
  });
  return system;
}
