#!/usr/bin/env node
import { connectNats, createLogger, loadConfig, loadConfigOrExit, runService, startTracing } from "@flowmonkey/shared";
import { engineConfigFields } from "./config.js";
import { createEngine } from "./engine.js";

const config = loadConfigOrExit(() => loadConfig(engineConfigFields, { argv: process.argv.slice(2), program: "flowmonkey-engine" }));
const log = createLogger({ name: "engine", level: config.logLevel, pretty: config.logPretty, bindings: { region: config.region } });
await runService(
  async () => {
    const nc = await connectNats({ url: config.natsUrl, creds: config.natsCreds, name: "flowmonkey-engine", log });
    const circuit = { coolDownMs: config.circuitCoolDownMs, minResults: config.circuitMinResults, failureRatio: config.circuitFailureRatio };
    const metrics = config.metricsPort === undefined ? undefined : { port: config.metricsPort, host: config.metricsHost, processMetrics: true };
    return createEngine({ ...config, circuit, metrics, nc, log, ownsConnection: true });
  },
  { log, graceMs: config.shutdownGraceMs, tracing: startTracing({ serviceName: "flowmonkey-engine", otlpEndpoint: config.otlpEndpoint }) },
);
