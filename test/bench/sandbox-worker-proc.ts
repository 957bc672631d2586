/**
 * The worker of the sandbox mesh benchmark (sandbox-mesh.ts), a child process: the real
 * createWorker() in us-east-1 serving one handler type, BENCH_HANDLER_TYPE, either in process
 * (a defineHandler around sumItems) or, with BENCH_HANDLER_DIR set, as the sandboxed stateless
 * bundle `<type>@1.0.0` from that directory with a warm pool of BENCH_SANDBOX_POOL processes.
 * Env: NATS_URL, BENCH_PREFIX, BENCH_HANDLER_TYPE, BENCH_CONCURRENCY (16), optional
 * BENCH_HANDLER_DIR, BENCH_SANDBOX_POOL (the worker's default, 2), BENCH_LOG_LEVEL (warn).
 */
import { connectNats, createLogger } from "@flowmonkey/shared";
import { createWorker, defineHandler } from "@flowmonkey/worker";
import { fatal, installFatalHandlers, serveChild } from "./child-side.js";
import { sumItems } from "./sandbox-handler.js";

installFatalHandlers();
const env = (name: string) => process.env[name] ?? fatal(new Error(`${name} is not set`));

const log = createLogger({ name: "worker", level: process.env["BENCH_LOG_LEVEL"] ?? "warn", destination: process.stderr });
const nc = await connectNats({ url: env("NATS_URL"), name: "bench-sandbox-worker", log });
const type = env("BENCH_HANDLER_TYPE");
const concurrency = Number(process.env["BENCH_CONCURRENCY"] ?? "16");
const handlerDir = process.env["BENCH_HANDLER_DIR"] || undefined;
const poolSize = process.env["BENCH_SANDBOX_POOL"] ? Number(process.env["BENCH_SANDBOX_POOL"]) : undefined;
const worker = createWorker({
  nc,
  log,
  prefix: env("BENCH_PREFIX"),
  region: "us-east-1",
  concurrency,
  ownsConnection: true,
  ...(handlerDir
    ? { handlers: [], sandbox: { handlers: [{ type, version: "1.0.0" }], handlerDir, ...(poolSize ? { poolSize } : {}) } }
    : { handlers: [defineHandler({ type, execute: (ctx) => sumItems(ctx.input) })] }),
});
await worker.start();

serveChild(
  { workerId: worker.workerId, type, concurrency, sandboxed: handlerDir !== undefined, poolSize: poolSize ?? "default" },
  { workerStats: () => ({ ...worker.stats() }) },
  async () => {
    await worker.drain();
    await worker.close();
  },
);
