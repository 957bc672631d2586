#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { connectNats, natsConnectOptions, createLogger, loadConfig, loadConfigOrExit, runService, startTracing } from "@flowmonkey/shared";
import { gatewayConfig } from "./config.js";
import { createGateway } from "./gateway.js";

// The binary: config → logger → NATS → gateway, inside the shared process shell.
const cfg = loadConfigOrExit(() => loadConfig(gatewayConfig, { argv: process.argv.slice(2), program: "flowmonkey-gateway" }));
const log = createLogger({ name: "gateway", level: cfg.logLevel, pretty: cfg.logPretty });
if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
  process.stderr.write("flowmonkey-gateway: FM_HTTP_TLS_CERT and FM_HTTP_TLS_KEY go together: set both for HTTPS, or neither\n");
  process.exit(2);
}
const readPem = (path: string, what: string): Buffer => {
  try {
    return readFileSync(path);
  } catch (err) {
    process.stderr.write(`flowmonkey-gateway: cannot read ${what} ${path}: ${(err as Error).message}\n`);
    return process.exit(2);
  }
};
const tls = cfg.tlsCert && cfg.tlsKey ? { cert: readPem(cfg.tlsCert, "FM_HTTP_TLS_CERT"), key: readPem(cfg.tlsKey, "FM_HTTP_TLS_KEY") } : undefined;
await runService(
  async () => {
    const nc = await connectNats({ ...natsConnectOptions(cfg), name: "flowmonkey-gateway", log });
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
      corsOrigins: cfg.corsOrigins,
      tls,
    });
  },
  { log, graceMs: cfg.shutdownGraceMs, tracing: await startTracing({ serviceName: "flowmonkey-gateway", otlpEndpoint: cfg.otlpEndpoint }) },
);
