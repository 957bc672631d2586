/**
 * A worker process for the chaos suite: the built-in handlers plus `charge`, a handler with a
 * real side effect (a row in PostgreSQL) made idempotent the way a handler author should: keyed
 * by task and attempt. A redelivered attempt (its first worker was SIGKILLed) finds the effect
 * done and does not charge twice; `runs` counts how often the handler ran for it.
 *
 *   node --import tsx test/chaos/support/effects-worker.ts --region R --handlers a,b --concurrency N
 * Env: NATS_URL, FM_PREFIX, FM_HEARTBEAT_TIMEOUT_MS, LOG_LEVEL, CHAOS_EFFECTS_DATABASE_URL.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { z } from "zod";
import { connectNats, createLogger, runService } from "@flowmonkey/shared";
import { builtInHandlers, createWorker, defineHandler } from "@flowmonkey/worker";

const { values } = parseArgs({ options: { region: { type: "string" }, handlers: { type: "string" }, concurrency: { type: "string" } } });
const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const effects = new pg.Pool({ connectionString: env("CHAOS_EFFECTS_DATABASE_URL"), max: 4 });

const charge = defineHandler({
  type: "charge",
  version: "1",
  input: z.object({ amount: z.number() }),
  async execute(ctx) {
    const { rows } = await effects.query<{ runs: number }>(
      `INSERT INTO chaos_effects (task_id, attempt, amount) VALUES ($1, $2, $3)
       ON CONFLICT (task_id, attempt) DO UPDATE SET runs = chaos_effects.runs + 1
       RETURNING runs`,
      [ctx.task.taskId, ctx.task.attempt, ctx.input.amount],
    );
    return { charged: ctx.input.amount, runs: rows[0]!.runs };
  },
});

const wanted = (values.handlers ?? "echo,delay,fail,charge").split(",");
const handlers = wanted.map((type) => (type === "charge" ? charge : builtInHandlers[type] ?? type));
const log = createLogger({ name: "worker", level: process.env["LOG_LEVEL"] ?? "info", pretty: false, bindings: { region: values.region ?? "us-east-1" } });
await runService(
  async () =>
    createWorker({
      nc: await connectNats({ url: env("NATS_URL"), name: "chaos effects worker", log }),
      log,
      prefix: env("FM_PREFIX"),
      region: values.region ?? "us-east-1",
      handlers,
      concurrency: Number(values.concurrency ?? 8),
      heartbeatTimeoutMs: Number(env("FM_HEARTBEAT_TIMEOUT_MS")),
      ownsConnection: true,
    }),
  { log, graceMs: 5000 },
);
