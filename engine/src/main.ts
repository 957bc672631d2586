#!/usr/bin/env node
import { connectNats, natsConnectOptions, createLogger, loadConfig, loadConfigOrExit, regionTopology, runService, startTracing } from "@flowmonkey/shared";
import { engineConfigFields } from "./config.js";
import { createEngine } from "./engine.js";

const config = loadConfigOrExit(() => loadConfig(engineConfigFields, { argv: process.argv.slice(2), program: "flowmonkey-engine" }));
const log = createLogger({ name: "engine", level: config.logLevel, pretty: config.logPretty, bindings: { region: config.region } });
await runService(
  async () => {
    const nc = await connectNats({ ...natsConnectOptions(config), name: "flowmonkey-engine", log });
    const circuit = { coolDownMs: config.circuitCoolDownMs, minResults: config.circuitMinResults, failureRatio: config.circuitFailureRatio };
    const metrics = config.metricsPort === undefined ? undefined : { port: config.metricsPort, host: config.metricsHost, processMetrics: true };
    const topology = config.regionDomains ? regionTopology({ hubDomain: config.hubDomain, regionDomains: config.regionDomains }) : undefined;
    const expressions = { timeoutMs: config.expressionTimeoutMs, memoryMb: config.expressionMemoryMb, processes: config.expressionProcesses };
    return createEngine({ ...config, circuit, metrics, topology, expressions, nc, log, ownsConnection: true });
  },
  { log, graceMs: config.shutdownGraceMs, tracing: await startTracing({ serviceName: "flowmonkey-engine", otlpEndpoint: config.otlpEndpoint }) },
);
