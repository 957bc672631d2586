/**
 * A worker child for the progress part of the benchmark: the real createWorker() serving one
 * `flood` handler that sends `updates` progress updates, each awaited (the live publish and the
 * fm_progress KV write), and reports how long that took. Env: NATS_URL, BENCH_PREFIX,
 * BENCH_CONCURRENCY, BENCH_PROGRESS_INTERVAL_MS (the per-task throttle; 0 = every update goes out).
 */
import { connectNats, createLogger } from "@flowmonkey/shared";
import { createWorker, defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";
import { wallNow } from "./stats.js";

installFatalHandlers();
const env = (name: string) => process.env[name] ?? fatal(new Error(`${name} is not set`));

const flood = defineHandler({
  type: "flood",
  version: "1",
  input: z.object({ updates: z.number().int().min(1) }),
  async execute(ctx) {
    const started = wallNow();
    for (let i = 1; i <= ctx.input.updates; i++) await ctx.progress.update(Math.floor((i * 99) / ctx.input.updates), `update ${i}`);
    return { updates: ctx.input.updates, ms: wallNow() - started };
  },
});

const log = createLogger({ name: "worker", level: process.env["BENCH_LOG_LEVEL"] ?? "warn", destination: process.stderr });
const nc = await connectNats({ url: env("NATS_URL"), name: "bench-progress-worker", log });
const worker = createWorker({
  nc,
  log,
  prefix: env("BENCH_PREFIX"),
  region: "us-east-1",
  handlers: [flood],
  concurrency: Number(process.env["BENCH_CONCURRENCY"] ?? "16"),
  progressIntervalMs: Number(process.env["BENCH_PROGRESS_INTERVAL_MS"] ?? "0"),
  ownsConnection: true,
});
await worker.start();
serveChild({ workerId: worker.workerId }, {}, async () => {
  await worker.drain();
  await worker.close();
});
