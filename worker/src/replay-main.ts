#!/usr/bin/env node
/**
 * `flowmonkey task replay`'s runner: one task on stdin (`{"task": Task}`), its handler run
 * here with runTaskLocally, and newline-delimited JSON on stdout — `{"effect":…}` as the handler
 * reports progress, emits events or saves checkpoints, then one `{"result": TaskResult}` or
 * `{"error":{code,message}}`. A separate process because the gateway's CLI never imports worker
 * code (the package boundary); logs go to stderr so stdout stays machine-readable.
 */
import { buffer } from "node:stream/consumers";
import { connectNats, natsConnectOptions, createLogger, decode, fields, loadConfigOrExit, loadConfig, Task, toFmError } from "@flowmonkey/shared";
import { z } from "zod";
import { builtInHandlers } from "./handlers/index.js";
import { runTaskLocally } from "./runner/run-locally.js";

const config = loadConfigOrExit(() =>
  loadConfig(
    { natsUrl: fields.natsUrl, natsCreds: fields.natsCreds, natsUser: fields.natsUser, natsPassword: fields.natsPassword, natsTlsCa: fields.natsTlsCa, natsTlsCert: fields.natsTlsCert, natsTlsKey: fields.natsTlsKey, prefix: fields.prefix, logLevel: fields.logLevel },
    { argv: process.argv.slice(2), program: "flowmonkey-worker-replay" },
  ),
);
const log = createLogger({ name: "replay", level: config.logLevel, destination: process.stderr });
const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function replay(): Promise<number> {
  const { task } = decode(await buffer(process.stdin), z.object({ task: Task }), { maxBytes: 64 * 1024 * 1024, what: "task on stdin" });
  const handler = builtInHandlers[task.handler.type];
  if (!handler) {
    line({ error: { code: "HANDLER_NOT_FOUND", message: `handler "${task.handler.type}" is not a built-in; only built-in handlers can be replayed locally` } });
    return 1;
  }
  const nc = await connectNats({ ...natsConnectOptions(config), name: "flowmonkey-replay", log, timeoutMs: 3000 });
  try {
    const outcome = await runTaskLocally(task, handler, { nc, prefix: config.prefix, log, onEffect: (effect) => line({ effect }) });
    if (outcome.kind === "abandoned") throw outcome.reason;
    line({ result: outcome.result });
    return outcome.result.outcome === "success" || outcome.result.outcome === "wait" ? 0 : 1;
  } finally {
    await nc.close();
  }
}

process.exitCode = await replay().catch((thrown: unknown) => {
  const error = toFmError(thrown);
  line({ error: { code: error.code, message: error.message } });
  return 1;
});
