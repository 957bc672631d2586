#!/usr/bin/env node
import { connectNats, createLogger, loadConfig, loadConfigOrExit, runService, startTracing } from "@flowmonkey/shared";
import { gatewayConfig } from "./config.js";
import { createGateway } from "./gateway.js";

// The binary: config → logger → NATS → gateway, inside the shared process shell.
const cfg = loadConfigOrExit(() => loadConfig(gatewayConfig, { argv: process.argv.slice(2), program: "flowmonkey-gateway" }));
const log = createLogger({ name: "gateway", level: cfg.logLevel, pretty: cfg.logPretty });
await runService(
  async () => {
    const nc = await connectNats({ url: cfg.natsUrl, creds: cfg.natsCreds, user: cfg.natsUser, password: cfg.natsPassword, name: "flowmonkey-gateway", log });
    return createGateway({
      nc,
      log,
      prefix: cfg.prefix,
      port: cfg.httpPort,
      host: cfg.httpHost,
      maxMessageBytes: cfg.maxMessageBytes,
      ownsConnection: true,
      processMetrics: true,
      apiTokens: cfg.apiTokens,
    });
  },
  { log, graceMs: cfg.shutdownGraceMs, tracing: await startTracing({ serviceName: "flowmonkey-gateway", otlpEndpoint: cfg.otlpEndpoint }) },
);
