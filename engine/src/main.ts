#!/usr/bin/env node
import { connectNats, ConfigError, createLogger, EXIT, loadConfig, runService } from "@flowmonkey/shared";
import { engineConfigFields } from "./config.js";
import { createEngine } from "./engine.js";

let config;
try {
  config = loadConfig(engineConfigFields, { argv: process.argv.slice(2), program: "flowmonkey-engine" });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(EXIT.config);
}
const log = createLogger({ name: "engine", level: config.logLevel, pretty: config.logPretty, bindings: { region: config.region } });
await runService(
  async () => createEngine({ ...config, nc: await connectNats({ url: config.natsUrl, creds: config.natsCreds, name: "flowmonkey-engine", log }), log, ownsConnection: true }),
  { log, graceMs: config.shutdownGraceMs },
);
