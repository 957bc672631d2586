/**
 * The mesh's engine for the benchmark, a child process: the real createEngine() on its own NATS
 * connection and PostgreSQL pool. Env: NATS_URL, BENCH_PREFIX, DATABASE_URL, optional
 * BENCH_ENGINE_MAX_BATCH, BENCH_BATCH_CONCURRENCY, BENCH_DB_POOL_SIZE, BENCH_HEARTBEAT_TIMEOUT_MS (default 60000), BENCH_LOG_LEVEL (default warn; logs go to stderr),
 * BENCH_RETENTION (e.g. "60s": the engine's FM_RETENTION, swept every 5 s).
 */
import { createEngine } from "@flowmonkey/engine";
import { connectNats, createLogger, type RetentionPeriod } from "@flowmonkey/shared";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";

installFatalHandlers();
const env = (name: string) => process.env[name] ?? fatal(new Error(`${name} is not set`));
const optionalInt = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);

const log = createLogger({ name: "engine", level: process.env["BENCH_LOG_LEVEL"] ?? "warn", destination: process.stderr });
const nc = await connectNats({ url: env("NATS_URL"), name: "bench-engine", log });
const maxBatch = optionalInt("BENCH_ENGINE_MAX_BATCH");
const dbPoolSize = optionalInt("BENCH_DB_POOL_SIZE");
const deadlineSweepIntervalMs = optionalInt("BENCH_DEADLINE_SWEEP_MS");
const batchConcurrency = optionalInt("BENCH_BATCH_CONCURRENCY");
const engine = createEngine({
  nc,
  log,
  prefix: env("BENCH_PREFIX"),
  databaseUrl: env("DATABASE_URL"),
  heartbeatTimeoutMs: optionalInt("BENCH_HEARTBEAT_TIMEOUT_MS") ?? 60_000,
  ownsConnection: true,
  ...(maxBatch ? { maxBatch } : {}),
  ...(dbPoolSize ? { dbPoolSize } : {}),
  ...(deadlineSweepIntervalMs ? { deadlineSweepIntervalMs } : {}),
  ...(batchConcurrency ? { batchConcurrency } : {}),
  // The soak bench runs with a short retention, so the sweep works while the load runs.
  ...(process.env["BENCH_RETENTION"] ? { retention: process.env["BENCH_RETENTION"] as RetentionPeriod, retentionSweepIntervalMs: 5000 } : {}),
});
await engine.start();

serveChild({ maxBatch: maxBatch ?? "default", dbPoolSize: dbPoolSize ?? "default" }, {}, async () => {
  await engine.drain();
  await engine.close();
});
