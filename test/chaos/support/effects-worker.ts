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

/**
 * A stateful handler: works through `items` items (slowly), recording each in batch_items, and
 * checkpoints every `every`; a redelivered run starts from the last checkpoint.
 */
const batch = defineHandler({
  type: "batch",
  version: "1",
  input: z.object({ items: z.number().int().positive(), every: z.number().int().positive(), itemMs: z.number().int().nonnegative() }),
  async execute(ctx) {
    const { items, every, itemMs } = ctx.input;
    const saved = (await ctx.checkpoint.load()) as { next: number } | undefined;
    const from = saved?.next ?? 0;
    for (let item = from; item < items; item++) {
      await effects.query("INSERT INTO batch_items (execution_id, item, pid) VALUES ($1, $2, $3)", [ctx.task.executionId, item, process.pid]);
      await new Promise((resolve) => setTimeout(resolve, itemMs));
      if ((item + 1) % every === 0) await ctx.checkpoint.save({ next: item + 1 });
      void ctx.progress.update(((item + 1) / items) * 100);
    }
    return { resumedFrom: from, items };
  },
});

const wanted = (values.handlers ?? "echo,delay,fail,charge").split(",");
const custom: Record<string, typeof charge | typeof batch> = { charge, batch };
const handlers = wanted.map((type) => custom[type] ?? builtInHandlers[type] ?? type);
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
