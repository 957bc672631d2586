#!/usr/bin/env node
import { ConfigError, connectNats, createLogger, EXIT, loadConfig, runService } from "@flowmonkey/shared";
import { gatewayConfig } from "./config.js";
import { createGateway } from "./gateway.js";

// The binary: config → logger → NATS → gateway, inside the shared process shell.
let config;
try {
  config = loadConfig(gatewayConfig, { argv: process.argv.slice(2), program: "flowmonkey-gateway" });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(EXIT.config);
}
const cfg = config;
const log = createLogger({ name: "gateway", level: cfg.logLevel, pretty: cfg.logPretty });
await runService(
  async () => {
    const nc = await connectNats({ url: cfg.natsUrl, creds: cfg.natsCreds, name: "flowmonkey-gateway", log });
    return createGateway({
      nc,
      log,
      prefix: cfg.prefix,
      port: cfg.httpPort,
      host: cfg.httpHost,
      maxMessageBytes: cfg.maxMessageBytes,
      ownsConnection: true,
    });
  },
  { log, graceMs: cfg.shutdownGraceMs },
);
