/**
 * The plumbing part of `npm run bench` (handlers' waits and progress), each measurement on its
 * own subject prefix and fresh database, next to a baseline measured in the same run:
 *
 *  1. waits: N executions parked at once on a `wait` step (resume tokens). Engine RSS idle vs.
 *     with N waiting, the worker's running tasks while they wait, then M of them resumed at a
 *     fixed rate (resume request → the execution's completed event, p50/p99) against the
 *     baseline of M one-step `echo` flows started at the same rate (start → completed), then
 *     the rest resumed as fast as possible.
 *  2. progress: a worker's tasks each sending progress updates as fast as they are stored (live
 *     publish + fm_progress KV write, awaited; per-task throttle off) vs. the same publishes and
 *     KV writes made by a bare client (no worker, no SDK).
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { createApiClient, createNames, encode, provisionMesh } from "@flowmonkey/shared";
import type { TestDatabase } from "../support/postgres.js";
import { spawnChild, type ChildHandle } from "./child-host.js";
import { envInt, round, summarize, wallNow, withDeadline, type LatencySummary } from "./stats.js";

export interface PlumbingParams {
  waits: number;
  resumeSample: number;
  resumeRate: number;
  progressTasks: number;
  progressUpdatesPerTask: number;
  timeoutMs: number;
}

/** Parameters from the environment (see run-plumbing.ts). */
export function plumbingParams(): PlumbingParams {
  const waits = envInt("BENCH_WAITS", 10_000, 1);
  return {
    waits,
    resumeSample: Math.min(waits, envInt("BENCH_RESUME_SAMPLE", 2000, 1)),
    resumeRate: envInt("BENCH_RESUME_RATE", 200, 1),
    progressTasks: envInt("BENCH_PROGRESS_TASKS", 16, 1),
    progressUpdatesPerTask: envInt("BENCH_PROGRESS_UPDATES", 2000, 1),
    timeoutMs: envInt("BENCH_PHASE_TIMEOUT_MS", 300_000, 1000),
  };
}

export interface PlumbingContext {
  nc: NatsConnection;
  natsUrl: string;
  freshDatabase(): Promise<TestDatabase>;
  log(msg: string): void;
}

export interface WaitsReport {
  waits: number;
  /** Publishing N starts → N `waiting` events. */
  parkPerSec: number;
  /** After a full GC: the process's resident memory and the JS heap it retains. */
  engineRssIdleMB: number;
  engineRssWaitingMB: number;
  engineHeapIdleMB: number;
  engineHeapWaitingMB: number;
  /** Retained heap (waiting − idle) / N: what one parked execution costs the engine's memory. */
  engineHeapPerWaitKB: number;
  /** Tasks the worker held while all N waited (0: waiting holds no slot). */
  workerRunningWhileWaiting: number;
  resumeRatePerSec: number;
  /** fm.api.resume request sent → the execution's completed event (the step ran again on the worker). */
  resumeToCompletedMs: LatencySummary | undefined;
  /** fm.api.resume request → its reply (the resume committed). */
  resumeReplyMs: LatencySummary | undefined;
  /** Baseline: one-step echo flows started at the same rate, interleaved with the resumes: start published → completed event. */
  baselineStartToCompletedMs: LatencySummary | undefined;
  /** resume p50 / baseline p50. */
  resumeVsStartP50: number | null;
  /** The remaining waits resumed as fast as the driver sends (256 in flight). */
  drainResumesPerSec: number;
  engineRssAfterMB: number;
}

export interface ProgressReport {
  tasks: number;
  updatesPerTask: number;
  /** Updates a worker sent per second (handler-side: every update awaited), and as received by a `progress.>` subscriber. */
  workerUpdatesPerSec: number;
  receivedPerSec: number;
  /** Baseline: the same number of core publishes + KV puts from a bare client, same concurrency. */
  bareClientUpdatesPerSec: number;
  ratio: number | null;
}

export interface PlumbingReport {
  waits: WaitsReport;
  progress: ProgressReport;
}

const mb = (bytes: unknown) => round(Number(bytes) / 2 ** 20, 1);

/** Parks, resumes and progress updates, each against its own engine/worker children. */
export async function measurePlumbing(ctx: PlumbingContext, p: PlumbingParams): Promise<PlumbingReport> {
  const waits = await measureWaits(ctx, p);
  const progress = await measureProgress(ctx, p);
  return { waits, progress };
}

/** Counts `<prefix>.exec.<flow>.*.<event>` messages by execution, with their arrival times. */
function watchEvents(nc: NatsConnection, prefix: string, flowId: string, event: string) {
  const at = new Map<string, number>();
  const waiters: Array<{ n: number; resolve(): void }> = [];
  const subject = createNames(prefix).subjects.execOfFlow(flowId).replace(/>$/, `*.${event}`);
  const sub: Subscription = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      at.set(msg.subject.split(".")[3]!, wallNow());
      for (const w of waiters.splice(0)) if (at.size >= w.n) w.resolve();
      else waiters.push(w);
    },
  });
  return {
    at,
    count: (n: number) => (at.size >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
    stop: () => sub.unsubscribe(),
  };
}

/** Runs `fn` over `items` with at most `window` in flight. */
async function inWindow<T>(items: T[], window: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(window, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** Calls `fn(i)` for i < count at `perSecond`, not waiting for earlier calls (open loop). */
async function paced(count: number, perSecond: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  const started = wallNow();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / perSecond;
    const ahead = due - wallNow();
    if (ahead > 1) await new Promise((r) => setTimeout(r, ahead));
    pending.push(fn(i));
  }
  await Promise.all(pending);
}

async function measureWaits(ctx: PlumbingContext, p: PlumbingParams): Promise<WaitsReport> {
  const prefix = "bwait";
  const db = await ctx.freshDatabase();
  const env = { NATS_URL: ctx.natsUrl, BENCH_PREFIX: prefix, DATABASE_URL: db.url, BENCH_CONCURRENCY: "256", BENCH_HANDLERS: "wait,echo" };
  const children: ChildHandle[] = [];
  try {
    // --expose-gc: the engine's retained heap is read after a full collection, apart from garbage not yet collected.
    children.push(await spawnChild("waits-engine", "./engine-proc.ts", { ...env, NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --expose-gc`.trim() }));
    children.push(await spawnChild("waits-worker", "./worker-proc.ts", env));
    const [engine, worker] = children as [ChildHandle, ChildHandle];
    const api = createApiClient(ctx.nc, { prefix, timeoutMs: 30_000 });
    await api.putFlow({ id: "park", steps: [{ id: "hold", handler: "wait", input: { resumeToken: "{% 'w-' & execution.id %}" } }] });
    await api.putFlow({ id: "one", steps: [{ id: "echo", handler: "echo", input: { n: 1 } }] });
    const subjects = createNames(prefix).subjects;
    const js = jetstream(ctx.nc);
    const start = (flowId: string, id: string) => js.publish(subjects.flowStart(flowId), encode({ input: {}, executionId: id }));
    const resume = (id: string) => api.resume(`w-${id}`, { id });

    // Warm-up: park and resume a few, so the idle RSS is that of a running engine, not a fresh one.
    ctx.log("waits: warm-up");
    const warmParked = watchEvents(ctx.nc, prefix, "park", "waiting");
    const warmDone = watchEvents(ctx.nc, prefix, "park", "completed");
    const warm = Array.from({ length: 200 }, (_, i) => `warm-${i}`);
    await inWindow(warm, 64, (id) => start("park", id));
    await withDeadline(warmParked.count(warm.length), p.timeoutMs, "warm-up waits");
    await inWindow(warm, 64, resume);
    await withDeadline(warmDone.count(warm.length), p.timeoutMs, "warm-up resumes");
    warmParked.stop();
    warmDone.stop();
    const idle = await engine.request("statsAfterGc");

    ctx.log(`waits: parking ${p.waits} executions`);
    const parked = watchEvents(ctx.nc, prefix, "park", "waiting");
    const done = watchEvents(ctx.nc, prefix, "park", "completed");
    const ids = Array.from({ length: p.waits }, (_, i) => `p-${i}`);
    const parkStart = wallNow();
    await inWindow(ids, 256, (id) => start("park", id));
    await withDeadline(parked.count(ids.length), p.timeoutMs, `${ids.length} waits`);
    const parkMs = wallNow() - parkStart;
    const waiting = await engine.request("statsAfterGc");
    const workerStats = await worker.request<{ running?: number }>("workerStats").catch(() => undefined);

    // Resumes and the baseline's starts interleaved, so both see the same engine, database and load.
    ctx.log(`waits: resuming ${p.resumeSample} at ${p.resumeRate}/s, interleaved with as many one-step echo flows started at the same rate`);
    const sample = ids.slice(0, p.resumeSample);
    const baseIds = sample.map((_, i) => `b-${i}`);
    const baselineDone = watchEvents(ctx.nc, prefix, "one", "completed");
    const sentAt = new Map<string, number>();
    const replyMs: number[] = [];
    await paced(sample.length * 2, p.resumeRate * 2, async (i) => {
      const id = i % 2 === 0 ? sample[i / 2]! : baseIds[(i - 1) / 2]!;
      const t0 = wallNow();
      sentAt.set(id, t0);
      if (i % 2 === 1) return start("one", id);
      await resume(id);
      replyMs.push(wallNow() - t0);
    });
    await withDeadline(done.count(sample.length), p.timeoutMs, "sampled resumes");
    await withDeadline(baselineDone.count(baseIds.length), p.timeoutMs, "baseline flows");
    baselineDone.stop();
    const resumeLatency = sample.map((id) => done.at.get(id)! - sentAt.get(id)!);
    const baseLatency = baseIds.map((id) => baselineDone.at.get(id)! - sentAt.get(id)!);

    const rest = ids.slice(p.resumeSample);
    ctx.log(`waits: resuming the other ${rest.length} as fast as possible`);
    const drainStart = wallNow();
    await inWindow(rest, 256, resume);
    await withDeadline(done.count(ids.length), p.timeoutMs, "all resumes");
    const drainMs = wallNow() - drainStart;
    parked.stop();
    done.stop();
    const after = await engine.request("statsAfterGc");

    const resumeSummary = summarize(resumeLatency);
    const baseSummary = summarize(baseLatency);
    return {
      waits: p.waits,
      parkPerSec: round((p.waits / parkMs) * 1000, 1),
      engineRssIdleMB: mb(idle["rss"]),
      engineRssWaitingMB: mb(waiting["rss"]),
      engineHeapIdleMB: mb(idle["heapUsed"]),
      engineHeapWaitingMB: mb(waiting["heapUsed"]),
      engineHeapPerWaitKB: round((Number(waiting["heapUsed"]) - Number(idle["heapUsed"])) / 1024 / p.waits, 3),
      workerRunningWhileWaiting: workerStats?.running ?? -1,
      resumeRatePerSec: p.resumeRate,
      resumeToCompletedMs: resumeSummary,
      resumeReplyMs: summarize(replyMs),
      baselineStartToCompletedMs: baseSummary,
      resumeVsStartP50: resumeSummary && baseSummary ? round(resumeSummary.p50 / baseSummary.p50, 2) : null,
      drainResumesPerSec: rest.length > 0 ? round((rest.length / drainMs) * 1000, 1) : 0,
      engineRssAfterMB: mb(after["rss"]),
    };
  } finally {
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
  }
}

async function measureProgress(ctx: PlumbingContext, p: PlumbingParams): Promise<ProgressReport> {
  const prefix = "bprog";
  const names = createNames(prefix);
  const db = await ctx.freshDatabase();
  const env = { NATS_URL: ctx.natsUrl, BENCH_PREFIX: prefix, DATABASE_URL: db.url, BENCH_CONCURRENCY: String(p.progressTasks), BENCH_PROGRESS_INTERVAL_MS: "0" };
  const children: ChildHandle[] = [];
  const total = p.progressTasks * p.progressUpdatesPerTask;
  try {
    children.push(await spawnChild("progress-engine", "./engine-proc.ts", env));
    children.push(await spawnChild("progress-worker", "./progress-worker-proc.ts", env));
    const api = createApiClient(ctx.nc, { prefix, timeoutMs: 30_000 });
    await api.putFlow({ id: "flood", steps: [{ id: "f", handler: "flood", input: { updates: p.progressUpdatesPerTask } }] });

    let received = 0;
    let first = 0;
    let last = 0;
    const sub = ctx.nc.subscribe(`${prefix}.progress.>`, {
      callback: () => {
        last = wallNow();
        if (received++ === 0) first = last;
      },
    });
    await ctx.nc.flush();
    ctx.log(`progress: ${p.progressTasks} tasks × ${p.progressUpdatesPerTask} updates`);
    const done = watchEvents(ctx.nc, prefix, "flood", "completed");
    const ids = Array.from({ length: p.progressTasks }, (_, i) => `f-${i}`);
    await Promise.all(ids.map((id) => api.start("flood", { executionId: id, input: {} })));
    await withDeadline(done.count(ids.length), p.timeoutMs, "progress floods");
    done.stop();
    const views = await Promise.all(ids.map((id) => api.get(id)));
    // Handler-side: all tasks ran at once; the slowest one bounds the worker's rate.
    const slowestMs = Math.max(...views.map((v) => Number((v.output as { ms: number }).ms)));
    sub.unsubscribe();

    // Baseline: a bare client doing the same publishes and KV puts, as many in parallel.
    await provisionMesh(ctx.nc, names, { heartbeatTimeoutMs: 60_000 });
    const kv = await new Kvm(ctx.nc).open(names.buckets.progress);
    const payload = encode({ executionId: "x", stepId: "s", percent: 50, message: "update", at: new Date().toISOString() });
    const bareStart = wallNow();
    await Promise.all(
      ids.map(async (id) => {
        for (let i = 0; i < p.progressUpdatesPerTask; i++) {
          ctx.nc.publish(`${prefix}.bare.${id}`, payload);
          await kv.put(`bare-${id}.s`, payload);
        }
      }),
    );
    const bareMs = wallNow() - bareStart;
    const workerRate = round((total / slowestMs) * 1000, 0);
    const bareRate = round((total / bareMs) * 1000, 0);
    return {
      tasks: p.progressTasks,
      updatesPerTask: p.progressUpdatesPerTask,
      workerUpdatesPerSec: workerRate,
      receivedPerSec: received > 1 ? round(((received - 1) / (last - first)) * 1000, 0) : 0,
      bareClientUpdatesPerSec: bareRate,
      ratio: bareRate > 0 ? round(workerRate / bareRate, 2) : null,
    };
  } finally {
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
  }
}

export function formatPlumbing(r: PlumbingReport): string {
  const w = r.waits;
  const lat = (s: LatencySummary | undefined) => (s ? `p50 ${s.p50} ms, p99 ${s.p99} ms` : "n/a");
  return [
    "",
    "plumbing: waits",
    `  ${w.waits} executions parked at ${w.parkPerSec}/s; worker tasks held while they waited: ${w.workerRunningWhileWaiting}`,
    `  engine after a full GC: RSS idle ${w.engineRssIdleMB} MB, with ${w.waits} waiting ${w.engineRssWaitingMB} MB, after resuming all ${w.engineRssAfterMB} MB`,
    `  engine heap retained: idle ${w.engineHeapIdleMB} MB, with ${w.waits} waiting ${w.engineHeapWaitingMB} MB (${w.engineHeapPerWaitKB} KB per wait)`,
    `  resume at ${w.resumeRatePerSec}/s → completed: ${lat(w.resumeToCompletedMs)} (reply ${lat(w.resumeReplyMs)})`,
    `  baseline, one-step flow started at ${w.resumeRatePerSec}/s → completed: ${lat(w.baselineStartToCompletedMs)}; resume/start p50 ratio ${w.resumeVsStartP50 ?? "n/a"}`,
    `  the other waits resumed as fast as possible: ${w.drainResumesPerSec}/s`,
    "plumbing: progress",
    `  ${r.progress.tasks} tasks × ${r.progress.updatesPerTask} updates (throttle off, each awaited): ${r.progress.workerUpdatesPerSec} updates/s from one worker (subscriber saw ${r.progress.receivedPerSec}/s)`,
    `  baseline, a bare client's publish + KV put at the same concurrency: ${r.progress.bareClientUpdatesPerSec}/s; ratio ${r.progress.ratio ?? "n/a"}`,
  ].join("\n");
}
