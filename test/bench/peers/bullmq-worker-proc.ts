/**
 * The BullMQ peer's worker, a child process (as the mesh's and the ceiling's are): one Worker
 * per step queue of the 3-queue chain; steps 1 and 2 "run" echo and enqueue the next step's
 * job (the idiomatic BullMQ chain: the worker adds the next job), step 3 just returns. Env:
 * REDIS_PORT, BENCH_CONCURRENCY (per Worker).
 */
import { Queue, Worker } from "bullmq";
import { fatal, installFatalHandlers, serveChild } from "../child-side.js";
import { BULLMQ_STEPS, queueName } from "./bullmq-protocol.js";

installFatalHandlers();
const port = Number(process.env["REDIS_PORT"] ?? fatal(new Error("REDIS_PORT is not set")));
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? "256");
const connection = { host: "127.0.0.1", port };

const next = new Map<number, Queue>();
for (let step = 2; step <= BULLMQ_STEPS; step++) next.set(step, new Queue(queueName(step), { connection }));
let processed = 0;
const workers = Array.from({ length: BULLMQ_STEPS }, (_, i) => {
  const step = i + 1;
  return new Worker(
    queueName(step),
    async (job) => {
      processed++;
      const output = job.data as { id: string };
      const following = next.get(step + 1);
      if (following) await following.add("step", output, { jobId: `${output.id}-s${step + 1}`, removeOnComplete: true, removeOnFail: true });
      return output;
    },
    { connection, concurrency },
  );
});
await Promise.all(workers.map((w) => w.waitUntilReady()));

serveChild({ concurrency }, { stats: async () => ({ processed, rss: process.memoryUsage().rss }) }, async () => {
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all([...next.values()].map((q) => q.close()));
});
