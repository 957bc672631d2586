/**
 * `npm run bench:dispatch`: dispatch → handler start on an idle worker with fewer slots than
 * lanes. One nats-server, a provisioned mesh per scenario, the real createWorker() in this
 * process with concurrency 1:
 *  - baseline: the worker serves one handler; every task goes to its normal lane;
 *  - wide: the worker serves 10 handlers × 3 priority lanes (30 pool consumers, 1 slot); the
 *    tasks rotate over all 30 lanes (each lane gets BENCH_DISPATCH_ROUNDS tasks).
 * Each task is published (as the engine's relay does: a JetStream publish on
 * fm.tasks.<region>.<handler>.<priority>) only when the worker is idle — its previous result is
 * stored and a gap of BENCH_DISPATCH_GAP_MS has passed — and measured from just before the
 * publish to the handler's first line (one process, one clock). A task that has not started
 * within BENCH_DISPATCH_TIMEOUT_MS counts as `not started` and the bench goes on; it may start
 * later, and its run is not measured.
 *
 * Env: BENCH_DISPATCH_ROUNDS (3: tasks per lane in the wide scenario; the baseline runs as many
 * tasks in total), BENCH_DISPATCH_GAP_MS (50), BENCH_DISPATCH_TIMEOUT_MS (5000),
 * BENCH_DISPATCH_HANDLERS (10). Writes test/bench/results/dispatch-<time>.json.
 */
import { randomUUID } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import { createNames, encode, PRIORITIES, type Priority, provisionMesh, silentLogger, type TaskInput } from "@flowmonkey/shared";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { createWorker, defineHandler } from "@flowmonkey/worker";
import { envInt, round, summarize, wallNow, type LatencySummary } from "./stats.js";

const REGION = "us-east-1";

export interface DispatchParams {
  rounds: number;
  gapMs: number;
  timeoutMs: number;
  handlers: number;
}

export function dispatchParams(): DispatchParams {
  return {
    rounds: envInt("BENCH_DISPATCH_ROUNDS", 3, 1),
    gapMs: envInt("BENCH_DISPATCH_GAP_MS", 50, 0),
    timeoutMs: envInt("BENCH_DISPATCH_TIMEOUT_MS", 5000, 100),
    handlers: envInt("BENCH_DISPATCH_HANDLERS", 10, 1),
  };
}

export interface DispatchScenario {
  name: string;
  handlers: number;
  lanes: number;
  concurrency: number;
  tasks: number;
  notStarted: number;
  /** Publish → handler start, ms, of the tasks that started in time. */
  dispatchToStartMs: LatencySummary | undefined;
  byPriority: Partial<Record<Priority, LatencySummary & { notStarted: number }>>;
}

export interface DispatchReport {
  params: DispatchParams;
  baseline: DispatchScenario;
  wide: DispatchScenario;
  /** wide / baseline, p50 and p95 (1 = as fast as one handler × one lane). */
  ratio: { p50: number; p95: number };
}

function task(handler: string, priority: Priority): TaskInput {
  const id = randomUUID();
  return {
    taskId: id,
    executionId: `bench-${id.slice(0, 8)}`,
    flowId: "dispatch-bench",
    flowVersion: 1,
    stepId: "step",
    attempt: 1,
    handler: { type: handler },
    input: {},
    context: {},
    config: { timeoutMs: 30_000, retries: 0, backoff: { kind: "fixed", initialDelayMs: 1000, maxDelayMs: 1000, jitter: false } },
    metadata: { region: REGION, priority, dispatchedAt: new Date().toISOString() },
  };
}

async function scenario(nc: NatsConnection, name: string, handlerCount: number, priorities: readonly Priority[], total: number, p: DispatchParams): Promise<DispatchScenario> {
  const names = createNames(`bench${randomUUID().slice(0, 8)}`);
  await provisionMesh(nc, names, { heartbeatTimeoutMs: 60_000 });
  const started = new Map<string, (at: number) => void>();
  const finished = new Map<string, () => void>();
  const handlerTypes = Array.from({ length: handlerCount }, (_, i) => `h${i}`);
  const worker = createWorker({
    nc,
    log: silentLogger(),
    prefix: names.prefix,
    region: REGION,
    concurrency: 1,
    handlers: handlerTypes.map((type) =>
      defineHandler({
        type,
        async execute(ctx) {
          started.get(ctx.task.taskId)?.(wallNow());
          return {};
        },
      }),
    ),
  });
  await worker.start();
  // The result subject, heard as the engine would: the next task goes out once this one is stored.
  const results = nc.subscribe(names.subjects.results(REGION), {
    callback: (_err, msg) => {
      const { taskId } = msg.json<{ taskId: string }>();
      finished.get(taskId)?.();
    },
  });
  const js = jetstream(nc);
  const lanes = handlerTypes.flatMap((h) => priorities.map((prio) => ({ h, prio })));
  const samples: Array<{ prio: Priority; ms: number | undefined }> = [];
  try {
    for (let k = 0; k < total; k++) {
      const { h, prio } = lanes[k % lanes.length]!;
      const t = task(h, prio);
      let onStart!: (at: number) => void;
      let onFinish!: () => void;
      const start = new Promise<number>((resolve) => (onStart = resolve));
      const finish = new Promise<void>((resolve) => (onFinish = resolve));
      started.set(t.taskId, onStart);
      finished.set(t.taskId, onFinish);
      await sleep(p.gapMs);
      const t0 = wallNow();
      await js.publish(names.subjects.task(REGION, h, prio), encode(t));
      let timer: NodeJS.Timeout | undefined;
      const at = await Promise.race([start, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), p.timeoutMs)))]);
      clearTimeout(timer);
      started.delete(t.taskId);
      samples.push({ prio, ms: at === undefined ? undefined : at - t0 });
      if (at !== undefined) await finish;
      finished.delete(t.taskId);
    }
  } finally {
    results.unsubscribe();
    await worker.close();
  }
  const ms = (s: typeof samples) => s.flatMap((x) => (x.ms === undefined ? [] : [x.ms]));
  const byPriority: DispatchScenario["byPriority"] = {};
  for (const prio of priorities) {
    const of = samples.filter((s) => s.prio === prio);
    const sum = summarize(ms(of));
    byPriority[prio] = { ...(sum ?? { count: 0, p50: NaN, p95: NaN, p99: NaN, mean: NaN, max: NaN }), notStarted: of.filter((s) => s.ms === undefined).length };
  }
  return {
    name,
    handlers: handlerCount,
    lanes: lanes.length,
    concurrency: 1,
    tasks: samples.length,
    notStarted: samples.filter((s) => s.ms === undefined).length,
    dispatchToStartMs: summarize(ms(samples)),
    byPriority,
  };
}

export async function measureDispatch(natsUrl: string, p: DispatchParams): Promise<DispatchReport> {
  const nc = await connect({ servers: natsUrl });
  try {
    const total = p.rounds * p.handlers * PRIORITIES.length;
    const baseline = await scenario(nc, "1 handler × 1 lane", 1, ["normal"], total, p);
    const wide = await scenario(nc, `${p.handlers} handlers × ${PRIORITIES.length} lanes`, p.handlers, PRIORITIES, total, p);
    const r = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? NaN : round(a / b, 2));
    return { params: p, baseline, wide, ratio: { p50: r(wide.dispatchToStartMs?.p50, baseline.dispatchToStartMs?.p50), p95: r(wide.dispatchToStartMs?.p95, baseline.dispatchToStartMs?.p95) } };
  } finally {
    await nc.close();
  }
}

export function formatDispatch(r: DispatchReport): string {
  const fmt = (s: LatencySummary | undefined) => (s ? `p50 ${s.p50} ms  p95 ${s.p95} ms  p99 ${s.p99} ms  max ${s.max} ms  (n=${s.count})` : "no task started");
  const lines = [
    `dispatch → handler start, idle worker, concurrency 1 (gap ${r.params.gapMs} ms between tasks, not-started after ${r.params.timeoutMs} ms)`,
  ];
  for (const s of [r.baseline, r.wide]) {
    lines.push(`  ${s.name.padEnd(24)} ${fmt(s.dispatchToStartMs)}; not started: ${s.notStarted}/${s.tasks}`);
    if (s.lanes > 1) {
      for (const [prio, v] of Object.entries(s.byPriority)) lines.push(`    ${prio.padEnd(8)} ${fmt(v.count ? v : undefined)}; not started: ${v.notStarted}`);
    }
  }
  lines.push(`  ratio wide / baseline: p50 ${r.ratio.p50}×, p95 ${r.ratio.p95}×`);
  return lines.join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const nats = await startNatsServer();
  try {
    const report = await measureDispatch(nats.url, dispatchParams());
    console.log(formatDispatch(report));
    const dir = fileURLToPath(new URL("./results/", import.meta.url));
    await mkdir(dir, { recursive: true });
    const file = `${dir}dispatch-${new Date().toISOString().replaceAll(":", "-")}.json`;
    await writeFile(file, `${JSON.stringify({ timestamp: new Date().toISOString(), dispatch: report }, null, 2)}\n`);
    console.log(`written to ${file}`);
  } finally {
    await nats.stop();
  }
}
