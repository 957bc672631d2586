/**
 * The mesh's worker for the benchmark, a child process: the real createWorker() serving `echo`
 * in us-east-1. Env: NATS_URL, BENCH_PREFIX, BENCH_CONCURRENCY, BENCH_LOG_LEVEL (default warn).
 */
import { connectNats, createLogger } from "@flowmonkey/shared";
import { createWorker } from "@flowmonkey/worker";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";

installFatalHandlers();
const env = (name: string) => process.env[name] ?? fatal(new Error(`${name} is not set`));

const log = createLogger({ name: "worker", level: process.env["BENCH_LOG_LEVEL"] ?? "warn", destination: process.stderr });
const nc = await connectNats({ url: env("NATS_URL"), name: "bench-worker", log });
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? "256");
const worker = createWorker({
  nc,
  log,
  prefix: env("BENCH_PREFIX"),
  region: "us-east-1",
  handlers: ["echo"],
  concurrency,
  ownsConnection: true,
});
await worker.start();

serveChild({ workerId: worker.workerId, concurrency }, { workerStats: () => ({ ...worker.stats() }) }, async () => {
  await worker.drain();
  await worker.close();
});
