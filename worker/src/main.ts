#!/usr/bin/env node
import { connectNats, natsConnectOptions, createLogger, loadConfigOrExit, loadConfigOrExitAsync, runService, startTracing } from "@flowmonkey/shared";
import { loadWorkerConfig } from "./config.js";
import { loadHandlerModules, selectHandlers } from "./handler-modules.js";
import { createWorker } from "./worker.js";

const config = loadConfigOrExit(() => loadWorkerConfig({ argv: process.argv.slice(2) }));
const handlers = await loadConfigOrExitAsync(async () => selectHandlers(config.handlers, await loadHandlerModules(config.handlerModules)));
const log = createLogger({ name: "worker", level: config.logLevel, pretty: config.logPretty });
await runService(
  async () =>
    createWorker({
      ...config,
      handlers,
      resources: { memoryMb: config.memoryMb, cpus: config.cpus },
      metrics: config.metricsPort === undefined ? undefined : { port: config.metricsPort, host: config.metricsHost, processMetrics: true },
      ...(config.sandboxedHandlers.length > 0
        ? {
            sandbox: {
              handlers: config.sandboxedHandlers,
              handlerDir: config.handlerDir,
              poolSize: config.sandboxPoolSize,
              heapMb: config.sandboxHeapMb,
              ...(config.sandboxMemoryMb === undefined ? {} : { memoryMb: config.sandboxMemoryMb }),
              isolation: config.sandboxIsolation,
              allowNetworks: config.sandboxAllowNetworks,
            },
          }
        : {}),
      expressions: { timeoutMs: config.expressionTimeoutMs, memoryMb: config.expressionMemoryMb, processes: config.expressionProcesses },
      nc: await connectNats({ ...natsConnectOptions(config), name: `worker ${config.region}`, log }),
      log,
      ownsConnection: true,
    }),
  { log, graceMs: config.shutdownGraceMs, tracing: await startTracing({ serviceName: "flowmonkey-worker", otlpEndpoint: config.otlpEndpoint }) },
);
