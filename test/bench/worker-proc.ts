/**
 * The mesh's worker for the benchmark, a child process: the real createWorker() serving `echo`
 * (or BENCH_HANDLERS, comma-separated built-ins) in us-east-1. Env: NATS_URL, BENCH_PREFIX,
 * BENCH_CONCURRENCY, optional BENCH_HEARTBEAT_TIMEOUT_MS (the pool consumers' ack_wait, default
 * the worker's 60 s), BENCH_LOG_LEVEL (default warn).
 */
import { connectNats, createLogger } from "@flowmonkey/shared";
import { createWorker } from "@flowmonkey/worker";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";

installFatalHandlers();
const env = (name: string) => process.env[name] ?? fatal(new Error(`${name} is not set`));

const log = createLogger({ name: "worker", level: process.env["BENCH_LOG_LEVEL"] ?? "warn", destination: process.stderr });
const nc = await connectNats({ url: env("NATS_URL"), name: "bench-worker", log });
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? "256");
const handlers = (process.env["BENCH_HANDLERS"] ?? "echo").split(",");
const heartbeatTimeoutMs = process.env["BENCH_HEARTBEAT_TIMEOUT_MS"] ? Number(process.env["BENCH_HEARTBEAT_TIMEOUT_MS"]) : undefined;
const worker = createWorker({
  nc,
  log,
  prefix: env("BENCH_PREFIX"),
  region: "us-east-1",
  handlers,
  concurrency,
  ...(heartbeatTimeoutMs ? { heartbeatTimeoutMs } : {}),
  ownsConnection: true,
});
await worker.start();

serveChild({ workerId: worker.workerId, concurrency, handlers, heartbeatTimeoutMs: heartbeatTimeoutMs ?? "default" }, { workerStats: () => ({ ...worker.stats() }) }, async () => {
  await worker.drain();
  await worker.close();
});
