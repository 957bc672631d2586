/**
 * The context-size part of `npm run bench` (also alone: `npm run bench:context`): what a large
 * execution context costs a step, with the context inline in the task vs offloaded to the blob
 * bucket (engine option contextInlineMaxBytes), for 1 KiB, 256 KiB and 10 MiB contexts.
 *
 * Per (mode, size): a fresh database and prefix, an engine and a worker in this process. Each
 * execution first builds its context (the FlowStart carries up to 900 KiB of it; a 10 MiB one
 * grows by 900 KiB per `grow` step, because a start or a result, like any message, must fit
 * NATS max_payload), then runs PROBES `probe` steps, which are measured: the task message's
 * bytes (a core subscription on the task subjects sees each publish), dispatch → handler start
 * (the engine's dispatchedAt, stamped when it decides the dispatch, before its transaction and
 * the offload, to the worker's clock at handler start: one machine, ±1 ms), and the handler's
 * `await ctx.context.get("marker")` (a small key: inline in the task, or the manifest fetch
 * when offloaded). Inline 10 MiB is not run: its task would be over max_payload and could
 * never be published; the report says so.
 *
 * Env: BENCH_CONTEXT (1; 0 skips the part in `npm run bench`), BENCH_CONTEXT_EXECUTIONS (5 per
 * mode and size), BENCH_CONTEXT_PROBES (5 measured steps per execution).
 */
import { pathToFileURL } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { createEngine } from "@flowmonkey/engine";
import { createApiClient, createLogger, createSubjects, decode, Task } from "@flowmonkey/shared";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { createWorker, defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { envInt, round, summarize, type LatencySummary } from "./stats.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** What one FlowStart or one grow step adds: under the default 1 MiB max_payload with room for the envelope. */
const CHUNK = 900 * KiB;
const SIZES = [
  { label: "1 KiB", bytes: KiB },
  { label: "256 KiB", bytes: 256 * KiB },
  { label: "10 MiB", bytes: 10 * MiB },
] as const;
const MODES = {
  /** The largest threshold the engine accepts: everything that fits a message goes inline. */
  inline: 8 * MiB,
  /** The smallest: every context here goes to the blob bucket. */
  offloaded: KiB,
} as const;
type Mode = keyof typeof MODES;

export interface ContextSizeParams {
  executions: number;
  probes: number;
}

export interface ContextSizeRun {
  mode: Mode;
  size: string;
  contextBytes: number;
  /** Bytes of each measured task message (all equal within a run up to a few bytes). */
  taskBytes: LatencySummary | undefined;
  dispatchToHandlerStartMs: LatencySummary | undefined;
  /** The handler's first context read (`get("marker")`). */
  firstGetMs: LatencySummary | undefined;
  /** dispatch → handler start + first get: when the handler has its data. */
  dispatchToDataMs: LatencySummary | undefined;
}

export interface ContextSizesReport {
  params: ContextSizeParams;
  runs: Array<ContextSizeRun | { mode: Mode; size: string; contextBytes: number; na: string }>;
  /** offloaded / inline per size (p50): task bytes and dispatch → data. */
  ratios: Array<{ size: string; taskBytes: number | null; dispatchToDataP50: number | null }>;
}

interface Sample {
  taskId: string;
  dispatchToStartMs: number;
  firstGetMs: number;
}

/**
 * The context a size stands for: `marker` (what probes read) and chunks of distinct content.
 * `{"marker":1,"part0":"…"}` is the chunk + 23 bytes: a "1 KiB" context is 1,031 bytes, just
 * over the offloaded mode's 1,024-byte threshold.
 */
function contextPlan(bytes: number): { start: Record<string, unknown>; growSteps: number[] } {
  const first = Math.min(bytes, CHUNK);
  const growSteps = Array.from({ length: Math.ceil((bytes - first) / CHUNK) }, (_, i) => i + 1);
  return { start: { marker: 1, part0: "a".repeat(first - 16) }, growSteps };
}

async function measureRun(nc: NatsConnection, natsUrl: string, db: TestDatabase, mode: Mode, size: (typeof SIZES)[number], p: ContextSizeParams): Promise<ContextSizeRun> {
  const prefix = `ctx${mode.slice(0, 3)}${size.bytes}`;
  const log = createLogger({ name: "bench-context", level: process.env["BENCH_LOG_LEVEL"] ?? "warn" });
  const samples: Sample[] = [];
  const grow = defineHandler({
    type: "grow",
    input: z.object({ part: z.number().int() }),
    execute(ctx) {
      ctx.context.set(`part${ctx.input.part}`, String.fromCharCode(97 + (ctx.input.part % 26)).repeat(Math.min(CHUNK, size.bytes - ctx.input.part * CHUNK)));
      return null;
    },
  });
  const probe = defineHandler({
    type: "probe",
    async execute(ctx) {
      const startedAt = performance.timeOrigin + performance.now();
      await ctx.context.get("marker");
      const got = performance.timeOrigin + performance.now();
      samples.push({ taskId: `${ctx.task.taskId}:${ctx.task.attempt}`, dispatchToStartMs: startedAt - Date.parse(ctx.task.metadata.dispatchedAt), firstGetMs: got - startedAt });
      return null;
    },
  });
  const engineConn = await connect({ servers: natsUrl, name: `bench-context-engine-${prefix}` });
  const engine = createEngine({ nc: engineConn, log, prefix, databaseUrl: db.url, contextInlineMaxBytes: MODES[mode], ownsConnection: true });
  await engine.start();
  const worker = createWorker({ nc, log, prefix, region: "us-east-1", handlers: [grow, probe], concurrency: 4, fetchExpiresMs: 1000 });
  const taskBytes = new Map<string, number>();
  const sub = nc.subscribe(createSubjects(prefix).tasksAll, {
    callback: (err, msg) => {
      if (err) return;
      const task = decode(msg.data, Task, { maxBytes: 64 * MiB });
      if (task.handler.type === "probe") taskBytes.set(`${task.taskId}:${task.attempt}`, msg.data.byteLength);
    },
  });
  try {
    await worker.start();
    const api = createApiClient(nc, { prefix });
    const plan = contextPlan(size.bytes);
    await api.putFlow({
      id: "context-bench",
      steps: [
        ...plan.growSteps.map((part) => ({ id: `grow${part}`, handler: "grow", input: { part } })),
        ...Array.from({ length: p.probes }, (_, i) => ({ id: `probe${i}`, handler: "probe", input: {} })),
      ],
    });
    for (let i = 0; i < p.executions; i++) {
      const { executionId } = await api.start("context-bench", { input: {}, context: plan.start });
      // The API's execution view would carry the whole context: read the status from the database.
      await waitFor(
        async () => {
          const { rows } = await engine.db.query<{ status: string }>("SELECT status FROM executions WHERE id = $1", [executionId]);
          const status = rows[0]?.status;
          if (status === "failed" || status === "cancelled") throw new Error(`context bench execution ${executionId} ${status}`);
          return status === "completed" ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 20, message: `context bench execution ${executionId} (${mode}, ${size.label}) to complete` },
      );
    }
    const { rows } = await engine.db.query<{ bytes: number }>("SELECT max(octet_length(context::text))::int AS bytes FROM executions");
    const measured = samples.filter((s) => taskBytes.has(s.taskId));
    return {
      mode,
      size: size.label,
      contextBytes: rows[0]?.bytes ?? 0,
      taskBytes: summarize(measured.map((s) => taskBytes.get(s.taskId)!)),
      dispatchToHandlerStartMs: summarize(measured.map((s) => s.dispatchToStartMs)),
      firstGetMs: summarize(measured.map((s) => s.firstGetMs)),
      dispatchToDataMs: summarize(measured.map((s) => s.dispatchToStartMs + s.firstGetMs)),
    };
  } finally {
    sub.unsubscribe();
    await worker.close();
    await engine.close();
  }
}

export async function measureContextSizes(
  env: { nc: NatsConnection; natsUrl: string; freshDatabase(): Promise<TestDatabase>; log(msg: string): void },
  p: ContextSizeParams,
): Promise<ContextSizesReport> {
  const runs: ContextSizesReport["runs"] = [];
  for (const size of SIZES) {
    for (const mode of Object.keys(MODES) as Mode[]) {
      if (mode === "inline" && size.bytes > MiB) {
        runs.push({ mode, size: size.label, contextBytes: size.bytes, na: `a ${size.label} task cannot be published: NATS max_payload is ${env.nc.info?.max_payload ?? MiB} bytes` });
        continue;
      }
      env.log(`context: ${mode} ${size.label}, ${p.executions} executions × ${p.probes} measured steps`);
      runs.push(await measureRun(env.nc, env.natsUrl, await env.freshDatabase(), mode, size, p));
    }
  }
  const p50 = (m: LatencySummary | undefined) => m?.p50;
  const ratios = SIZES.map(({ label }) => {
    const find = (mode: Mode) => runs.find((r): r is ContextSizeRun => r.size === label && r.mode === mode && !("na" in r));
    const inline = find("inline");
    const off = find("offloaded");
    const div = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? round(a / b, 3) : null);
    return { size: label, taskBytes: div(p50(off?.taskBytes), p50(inline?.taskBytes)), dispatchToDataP50: div(p50(off?.dispatchToDataMs), p50(inline?.dispatchToDataMs)) };
  });
  return { params: p, runs, ratios };
}

export function formatContextSizes(r: ContextSizesReport): string[] {
  const ms = (s: LatencySummary | undefined) => (s ? `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.max.toFixed(1)}` : "n/a");
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [
    "",
    `Context size (${r.params.executions} executions × ${r.params.probes} measured steps per row; ms p50 / p95 / max):`,
    `${pad("context", 9)}${pad("mode", 11)}${pad("task bytes", 12)}${pad("dispatch→handler", 22)}${pad("first get()", 22)}dispatch→data`,
  ];
  for (const run of r.runs) {
    if ("na" in run) {
      lines.push(`${pad(run.size, 9)}${pad(run.mode, 11)}n/a: ${run.na}`);
      continue;
    }
    lines.push(
      `${pad(run.size, 9)}${pad(run.mode, 11)}${pad(String(run.taskBytes?.p50 ?? "n/a"), 12)}${pad(ms(run.dispatchToHandlerStartMs), 22)}${pad(ms(run.firstGetMs), 22)}${ms(run.dispatchToDataMs)}`,
    );
  }
  for (const x of r.ratios) {
    lines.push(`  ${x.size}: offloaded/inline task bytes = ${x.taskBytes ?? "n/a"}, dispatch→data p50 = ${x.dispatchToDataP50 === null ? "n/a" : `${x.dispatchToDataP50}×`}`);
  }
  return lines;
}

export function contextSizeParams(): ContextSizeParams {
  return { executions: envInt("BENCH_CONTEXT_EXECUTIONS", 5, 1), probes: envInt("BENCH_CONTEXT_PROBES", 5, 1) };
}

/** `npm run bench:context`: this part alone, on its own nats-server, written to results/context-<time>.json. */
async function main(): Promise<void> {
  const { mkdir, writeFile } = await import("node:fs/promises");
  const nats = await startNatsServer();
  const dbs: TestDatabase[] = [];
  const nc = await connect({ servers: nats.url, name: "bench-context-driver" });
  try {
    const report = await measureContextSizes(
      {
        nc,
        natsUrl: nats.url,
        freshDatabase: async () => {
          const db = await createTestDatabase();
          dbs.push(db);
          return db;
        },
        log: (msg) => process.stderr.write(`[bench] ${msg}\n`),
      },
      contextSizeParams(),
    );
    console.log(formatContextSizes(report).join("\n"));
    const dir = new URL("./results/", import.meta.url);
    await mkdir(dir, { recursive: true });
    const file = new URL(`context-${new Date().toISOString().replace(/:/g, "-")}.json`, dir);
    await writeFile(file, `${JSON.stringify({ timestamp: new Date().toISOString(), contextSizes: report }, null, 2)}\n`);
    console.log(`\nwrote ${file.pathname}`);
  } finally {
    await nc.close();
    for (const db of dbs) await db.drop().catch(() => undefined);
    await nats.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
