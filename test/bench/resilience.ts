/**
 * The resilience part of `npm run bench`, measured in the same run as the throughput phases.
 * Every measurement gets its own subject prefix (so its own streams and durable consumers), its
 * own fresh database and its own engine/worker child processes, and each is reported next to a
 * baseline measured here too:
 *
 *  1. recovery: a worker process SIGKILLed while it runs a `delay` step; time from the kill to
 *     the step completing on the other worker, per heartbeat timeout (the pool consumers' ack_wait).
 *     Baseline: the same step undisturbed, and the expected heartbeat timeout + delay.
 *  2. priority: one marked flow queued behind a backlog of normal flows with no worker serving
 *     the handler, then a worker starts; the marked flow `high` vs. `normal` (the baseline).
 *  3. replicas: the closed-loop max phase against 3 engine processes sharing the database and
 *     prefix vs. against 1.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { createApiClient, createNames, encode } from "@flowmonkey/shared";
import pg from "pg";
import type { TestDatabase } from "../support/postgres.js";
import { spawnChild, type ChildHandle } from "./child-host.js";
import { cpuPercent, snapshotCpu, type CpuGroups } from "./cpu.js";
import { runPhase } from "./driver.js";
import { startMesh } from "./mesh.js";
import { round, wallNow, withDeadline, type LatencySummary } from "./stats.js";

export interface ResilienceParams {
  /** Heartbeat timeouts to measure recovery at (ms); the 60 s default is left out with BENCH_RECOVERY_DEFAULT=0. */
  recoveryHeartbeatsMs: number[];
  recoveryDelayMs: number;
  priorityBacklog: number;
  priorityConcurrency: number;
  priorityTaskMs: number;
  replicaEngines: number;
  replicaFlows: number;
  /** Shared with the main phases. */
  window: number;
  warmup: number;
  concurrency: number;
  publishInflight: number;
  phaseTimeoutMs: number;
  stepsPerFlow: number;
}

export interface ResilienceContext {
  nc: NatsConnection;
  natsUrl: string;
  /** A new empty database (dropped by the caller's cleanup if we fail to). */
  freshDatabase(): Promise<TestDatabase>;
  /** CPU groups for a phase: `extra` plus the database's PostgreSQL processes. */
  cpuGroups(extra: CpuGroups, dbName: string): Promise<CpuGroups>;
  log(msg: string): void;
}

export interface RecoveryReport {
  heartbeatTimeoutMs: number;
  delayMs: number;
  /** Undisturbed run of the same flow on the same mesh: start published → step.completed event. */
  undisturbedStartToStepCompletedMs: number;
  /** First progress message of the victim → SIGKILL sent. */
  progressToKillMs: number;
  /** SIGKILL → step.completed event from the engine (the step ran again, in full, on the survivor). */
  killToStepCompletedMs: number;
  /** SIGKILL → the survivor's handler start (tasks.started_at, the survivor's clock, ±1 ms). */
  killToRedeliveredStartMs: number | null;
  /** heartbeat timeout + delay: what the recovery should take (the ack_wait runs from the last in-progress ack, then the step runs in full). */
  expectedMs: number;
  /** killToStepCompleted / expected. */
  ratioToExpected: number;
  /** The attempt that completed, and whether the survivor (not the victim) ran it. */
  completedAttempt: number | null;
  completedBySurvivor: boolean;
}

export interface PriorityRun {
  markedPriority: "high" | "normal";
  backlog: number;
  workerConcurrency: number;
  /** Publishing the backlog + marked flow → all their tasks in the task stream. */
  queueFillMs: number;
  /** Normal tasks whose handler started before the marked flow's (tasks.started_at). */
  normalStartedBeforeMarked: number;
  /** Worker process spawned → marked flow's completed event. */
  workerSpawnToMarkedCompletedMs: number;
  /** First task's handler start (the worker serving) → marked flow's completed event. */
  firstTaskToMarkedCompletedMs: number;
  /** First task's handler start → the first normal (backlog) task's handler start. */
  firstTaskToFirstNormalStartMs: number;
  /** Longest pause between two consecutive handler starts while the backlog drained (a stalled lane shows here). */
  longestStartGapMs: number;
  /** First task's handler start → the last of the backlog's completed events. */
  firstTaskToAllCompletedMs: number;
}

export interface PriorityReport {
  high: PriorityRun;
  baseline: PriorityRun;
  /** high.firstTaskToMarkedCompleted / baseline.firstTaskToMarkedCompleted (lower is better). */
  markedLatencyRatio: number | null;
  /** high.firstTaskToMarkedCompleted / high.firstTaskToAllCompleted: the high flow's wait as a share of the backlog's. */
  highShareOfBacklog: number | null;
}

export interface ReplicaRun {
  engines: number;
  flows: number;
  window: number;
  flowsPerSec: number;
  stepsPerSec: number;
  flowLatencyMs: LatencySummary | undefined;
  cpuPercent: Record<string, number>;
}

export interface ReplicasReport {
  one: ReplicaRun;
  many: ReplicaRun;
  /** many / one flows/s. */
  flowsPerSecRatio: number | null;
}

export interface ResilienceReport {
  recovery: RecoveryReport[];
  priority: PriorityReport;
  replicas: ReplicasReport;
}

const REGION = "us-east-1";

/** Spawned children and databases of one measurement, released in reverse order even on failure. */
class Scope {
  private readonly releasers: Array<() => Promise<unknown>> = [];
  constructor(private readonly ctx: ResilienceContext) {}
  async database(): Promise<TestDatabase> {
    const db = await this.ctx.freshDatabase();
    this.releasers.push(() => db.drop());
    return db;
  }
  async child(name: string, file: string, env: Record<string, string>): Promise<ChildHandle> {
    const child = await spawnChild(name, file, env);
    this.releasers.push(() => child.stop());
    return child;
  }
  add(release: () => Promise<unknown>): void {
    this.releasers.push(release);
  }
  subscribe(sub: Subscription): Subscription {
    this.releasers.push(async () => sub.unsubscribe());
    return sub;
  }
  async release(): Promise<void> {
    let first: unknown;
    while (this.releasers.length > 0) {
      try {
        await withDeadline(this.releasers.pop()!(), 20_000, "releasing a resilience resource");
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

async function within<T>(scope: Scope, ctx: ResilienceContext, fn: (scope: Scope) => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await fn(scope);
  } catch (err) {
    await scope.release().catch((e: unknown) => ctx.log(`release after failure: ${(e as Error).message}`));
    throw err;
  }
  await scope.release();
  return result;
}

/** Resolves with the time (wallNow) of the first message on `subject` matching `accept`. */
function firstMessage(scope: Scope, nc: NatsConnection, subject: string, accept: (subject: string) => boolean = () => true) {
  let resolve!: (t: number) => void;
  const at = new Promise<number>((r) => (resolve = r));
  scope.subscribe(
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err && accept(msg.subject)) resolve(wallNow());
      },
    }),
  );
  return at;
}

async function query<R extends pg.QueryResultRow>(databaseUrl: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Recovery after a worker SIGKILL

async function measureRecovery(ctx: ResilienceContext, p: ResilienceParams, heartbeatTimeoutMs: number): Promise<RecoveryReport> {
  return within(new Scope(ctx), ctx, async (scope) => {
    const prefix = `rec_hb${heartbeatTimeoutMs}`;
    const db = await scope.database();
    const env = {
      NATS_URL: ctx.natsUrl,
      BENCH_PREFIX: prefix,
      DATABASE_URL: db.url,
      BENCH_HEARTBEAT_TIMEOUT_MS: String(heartbeatTimeoutMs),
      BENCH_HANDLERS: "delay",
      BENCH_CONCURRENCY: "4",
    };
    await scope.child(`engine ${prefix}`, "./engine-proc.ts", env);
    // Two workers of the pool from the start, so the survivor is already pulling when the task
    // comes back: the time measured is the redelivery, not a process start.
    const workers = [await scope.child(`worker-a ${prefix}`, "./worker-proc.ts", env), await scope.child(`worker-b ${prefix}`, "./worker-proc.ts", env)];
    const flowId = "nap";
    const api = createApiClient(ctx.nc, { prefix, timeoutMs: 15_000 });
    await api.putFlow({ id: flowId, version: "1.0.0", name: "one delay step (benchmark)", steps: [{ id: "nap", handler: "delay", input: { ms: p.recoveryDelayMs } }] });
    const names = createNames(prefix);
    const js = jetstream(ctx.nc);
    const start = (executionId: string) => js.publish(names.subjects.flowStart(flowId), encode({ executionId, input: {} }), { msgID: executionId });
    const stepCompleted = (executionId: string) =>
      firstMessage(scope, ctx.nc, `${names.subjects.execOfFlow(flowId).replace(/>$/, "")}${executionId}.step.>`, (s) => s.endsWith(".step.completed"));
    const failed = (executionId: string) =>
      firstMessage(scope, ctx.nc, `${names.subjects.execOfFlow(flowId).replace(/>$/, "")}${executionId}.*`, (s) => /\.(failed|cancelled)$/.test(s)).then(() => {
        throw new Error(`${prefix}: execution ${executionId} failed or was cancelled`);
      });
    const deadline = heartbeatTimeoutMs + p.recoveryDelayMs + 30_000;
    await ctx.nc.flush();

    // Baseline: the same step, undisturbed.
    const calmDone = stepCompleted("calm");
    const calmStart = wallNow();
    await start("calm");
    const calmAt = await withDeadline(Promise.race([calmDone, failed("calm")]), deadline, `${prefix}: undisturbed step`);

    // The victim: SIGKILL the worker running the step once it reports progress.
    const executionId = "victim";
    // A worker reports under its region: fm.progress.~<region>.<executionId>.<step>.
    const progress = firstMessage(scope, ctx.nc, names.subjects.progressOfExecution(executionId)[1]);
    const done = stepCompleted(executionId);
    const lost = failed(executionId);
    await ctx.nc.flush();
    await start(executionId);
    const progressAt = await withDeadline(Promise.race([progress, lost]), 30_000, `${prefix}: progress of the step`);
    const running = await Promise.all(workers.map((w) => w.request<{ running?: number }>("workerStats")));
    const victimIndex = running.findIndex((r) => (r.running ?? 0) > 0);
    if (victimIndex < 0) throw new Error(`${prefix}: progress seen but neither worker reports a running task (${JSON.stringify(running)})`);
    const victim = workers[victimIndex] as ChildHandle;
    const survivor = workers[1 - victimIndex] as ChildHandle;
    const killedAt = wallNow();
    await victim.kill("SIGKILL");
    ctx.log(`recovery (heartbeat timeout ${heartbeatTimeoutMs} ms): ${victim.name} SIGKILLed, waiting for the step on ${survivor.name}`);
    const completedAt = await withDeadline(Promise.race([done, lost]), deadline, `${prefix}: step completed after the kill`);

    const rows = await query<{ attempt: number; worker_id: string | null; started_ms: string | null }>(
      db.url,
      `SELECT attempt, worker_id, EXTRACT(EPOCH FROM started_at) * 1000 AS started_ms
         FROM tasks WHERE execution_id = $1 AND status = 'completed' ORDER BY attempt DESC LIMIT 1`,
      [executionId],
    );
    const row = rows[0];
    const startedMs = row?.started_ms != null ? Number(row.started_ms) : undefined;
    const expectedMs = heartbeatTimeoutMs + p.recoveryDelayMs;
    const killToStepCompletedMs = round(completedAt - killedAt, 1);
    return {
      heartbeatTimeoutMs,
      delayMs: p.recoveryDelayMs,
      undisturbedStartToStepCompletedMs: round(calmAt - calmStart, 1),
      progressToKillMs: round(killedAt - progressAt, 1),
      killToStepCompletedMs,
      killToRedeliveredStartMs: startedMs === undefined ? null : round(startedMs - killedAt, 1),
      expectedMs,
      ratioToExpected: round(killToStepCompletedMs / expectedMs),
      completedAttempt: row?.attempt ?? null,
      completedBySurvivor: row?.worker_id != null && row.worker_id === survivor.info["workerId"],
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 2. A marked flow behind a backlog, high vs. normal priority

async function measurePriority(ctx: ResilienceContext, p: ResilienceParams, markedPriority: "high" | "normal"): Promise<PriorityRun> {
  return within(new Scope(ctx), ctx, async (scope) => {
    const prefix = `prio_${markedPriority}`;
    const db = await scope.database();
    const env = { NATS_URL: ctx.natsUrl, BENCH_PREFIX: prefix, DATABASE_URL: db.url, BENCH_HANDLERS: "delay", BENCH_CONCURRENCY: String(p.priorityConcurrency) };
    // No worker serves `delay` yet: the backlog builds up in the task stream first.
    await scope.child(`engine ${prefix}`, "./engine-proc.ts", env);
    const flowId = "work";
    const api = createApiClient(ctx.nc, { prefix, timeoutMs: 15_000 });
    await api.putFlow({ id: flowId, version: "1.0.0", name: "one short delay step (benchmark)", steps: [{ id: "nap", handler: "delay", input: { ms: p.priorityTaskMs } }] });
    const names = createNames(prefix);
    const js = jetstream(ctx.nc);
    const jsm = await jetstreamManager(ctx.nc);
    const marked = "marked";
    const total = p.priorityBacklog + 1;

    let completed = 0;
    let markedAt: number | undefined;
    let lastAt = 0;
    let allDone!: () => void;
    const everyone = new Promise<void>((r) => (allDone = r));
    const execPrefix = names.subjects.execOfFlow(flowId).replace(/>$/, "");
    scope.subscribe(
      ctx.nc.subscribe(`${execPrefix}*.completed`, {
        callback: (err, msg) => {
          if (err) return;
          const t = wallNow();
          if (msg.subject.split(".")[3] === marked) markedAt = t;
          lastAt = t;
          if (++completed === total) allDone();
        },
      }),
    );
    await ctx.nc.flush();

    const start = (executionId: string, priority: "high" | "normal") =>
      js.publish(names.subjects.flowStart(flowId), encode({ executionId, input: {}, priority }), { msgID: executionId });
    const queued = async () => (await jsm.streams.info(names.streams.tasks)).state.messages;
    const untilQueued = async (n: number, what: string) => {
      const deadline = Date.now() + p.phaseTimeoutMs;
      while ((await queued()) < n) {
        if (Date.now() > deadline) throw new Error(`${prefix}: ${what}: only ${await queued()} of ${n} tasks queued within ${p.phaseTimeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const fillStart = wallNow();
    for (let i = 0; i < p.priorityBacklog; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, p.priorityBacklog - i) }, (_, k) => start(`n-${i + k}`, "normal")));
    }
    await untilQueued(p.priorityBacklog, "the backlog");
    await start(marked, markedPriority);
    await untilQueued(total, "the marked flow");
    const queueFillMs = round(wallNow() - fillStart, 1);

    ctx.log(`priority (marked ${markedPriority}): ${total} tasks queued in ${queueFillMs} ms; starting a worker (concurrency ${p.priorityConcurrency})`);
    const spawnedAt = wallNow();
    await scope.child(`worker ${prefix}`, "./worker-proc.ts", env);
    await withDeadline(everyone, p.phaseTimeoutMs, `${prefix}: ${completed} of ${total} flows completed`);
    if (markedAt === undefined) throw new Error(`${prefix}: no completed event for the marked flow`);

    const [stats] = await query<{ first_ms: string; first_normal_ms: string; ahead: number }>(
      db.url,
      `SELECT EXTRACT(EPOCH FROM min(started_at)) * 1000 AS first_ms,
              EXTRACT(EPOCH FROM min(started_at) FILTER (WHERE execution_id <> $1)) * 1000 AS first_normal_ms,
              count(*) FILTER (WHERE execution_id <> $1 AND started_at < (SELECT min(started_at) FROM tasks WHERE execution_id = $1))::int AS ahead
         FROM tasks`,
      [marked],
    );
    const [gap] = await query<{ ms: string | null }>(
      db.url,
      `SELECT max(gap) AS ms FROM (
         SELECT EXTRACT(EPOCH FROM started_at - lag(started_at) OVER (ORDER BY started_at)) * 1000 AS gap
           FROM tasks WHERE started_at IS NOT NULL) g`,
    );
    const firstMs = Number(stats?.first_ms);
    if (!Number.isFinite(firstMs)) throw new Error(`${prefix}: the tasks table has no started_at`);
    return {
      markedPriority,
      backlog: p.priorityBacklog,
      workerConcurrency: p.priorityConcurrency,
      queueFillMs,
      normalStartedBeforeMarked: stats!.ahead,
      workerSpawnToMarkedCompletedMs: round(markedAt - spawnedAt, 1),
      firstTaskToMarkedCompletedMs: round(markedAt - firstMs, 1),
      firstTaskToFirstNormalStartMs: round(Number(stats!.first_normal_ms) - firstMs, 1),
      longestStartGapMs: round(Number(gap?.ms ?? 0), 1),
      firstTaskToAllCompletedMs: round(lastAt - firstMs, 1),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Max-phase throughput with N engine replicas vs. 1

async function measureReplicas(ctx: ResilienceContext, p: ResilienceParams, engines: number): Promise<ReplicaRun> {
  return within(new Scope(ctx), ctx, async (scope) => {
    const prefix = `rep${engines}`;
    const db = await scope.database();
    const mesh = await startMesh(ctx.nc, ctx.natsUrl, db.url, { prefix, concurrency: p.concurrency, templates: false, engines });
    // Registered after the database, so the mesh stops before its database is dropped.
    scope.add(() => mesh.close());
    const label = `replicas ×${engines}`;
    if (p.warmup > 0) {
      await runPhase(mesh, { label: `${label} warm-up`, idPrefix: `${prefix}-w`, count: p.warmup, mode: { kind: "window", window: Math.min(p.window, 50) }, publishInflight: p.publishInflight, timeoutMs: p.phaseTimeoutMs, stepsPerFlow: p.stepsPerFlow });
    }
    const groups = () => ctx.cpuGroups({ main: [process.pid], engines: mesh.engines.map((e) => e.pid), worker: [mesh.worker.pid] }, db.name);
    const before = snapshotCpu(await groups());
    const r = await runPhase(mesh, { label, idPrefix: `${prefix}-m`, count: p.replicaFlows, mode: { kind: "window", window: p.window }, publishInflight: p.publishInflight, timeoutMs: p.phaseTimeoutMs, stepsPerFlow: p.stepsPerFlow });
    const cpu = cpuPercent(before, snapshotCpu(await groups()));
    ctx.log(`${label}: ${r.flowsPerSec} flows/s, flow p50 ${r.flowLatencyMs?.p50} ms`);
    return { engines, flows: r.flows, window: p.window, flowsPerSec: r.flowsPerSec, stepsPerSec: r.stepsPerSec, flowLatencyMs: r.flowLatencyMs, cpuPercent: cpu };
  });
}

export async function measureResilience(ctx: ResilienceContext, p: ResilienceParams): Promise<ResilienceReport> {
  ctx.log(`replicas: max phase (${p.replicaFlows} flows, window ${p.window}) against 1 engine, then ${p.replicaEngines}`);
  const one = await measureReplicas(ctx, p, 1);
  const many = await measureReplicas(ctx, p, p.replicaEngines);

  ctx.log(`priority: ${p.priorityBacklog} normal flows queued, then a marked one (normal first as the baseline, then high)`);
  const baseline = await measurePriority(ctx, p, "normal");
  const high = await measurePriority(ctx, p, "high");

  const recovery: RecoveryReport[] = [];
  for (const hb of p.recoveryHeartbeatsMs) {
    ctx.log(`recovery: heartbeat timeout ${hb} ms, ${p.recoveryDelayMs} ms delay step, one of two workers SIGKILLed`);
    recovery.push(await measureRecovery(ctx, p, hb));
  }

  return {
    recovery,
    priority: {
      high,
      baseline,
      markedLatencyRatio: baseline.firstTaskToMarkedCompletedMs > 0 ? round(high.firstTaskToMarkedCompletedMs / baseline.firstTaskToMarkedCompletedMs) : null,
      highShareOfBacklog: high.firstTaskToAllCompletedMs > 0 ? round(high.firstTaskToMarkedCompletedMs / high.firstTaskToAllCompletedMs) : null,
    },
    replicas: { one, many, flowsPerSecRatio: one.flowsPerSec > 0 ? round(many.flowsPerSec / one.flowsPerSec) : null },
  };
}

const ms = (v: number | null) => (v === null ? "n/a" : `${Math.round(v)} ms`);

export function formatResilience(r: ResilienceReport): string[] {
  const lines = ["", "Resilience:"];
  const { one, many } = r.replicas;
  lines.push(
    `  replicas: max phase (${one.flows} flows, window ${one.window}): 1 engine ${one.flowsPerSec.toFixed(0)} flows/s (p50 ${ms(one.flowLatencyMs?.p50 ?? null)}), ` +
      `${many.engines} engines ${many.flowsPerSec.toFixed(0)} flows/s (p50 ${ms(many.flowLatencyMs?.p50 ?? null)}); ratio ${many.engines}/1 = ${r.replicas.flowsPerSecRatio ?? "n/a"}`,
  );
  lines.push(`  replicas cpu: 1 engine: ${cpuText(one.cpuPercent)}; ${many.engines} engines: ${cpuText(many.cpuPercent)}`);
  const { high, baseline } = r.priority;
  const prio = (x: PriorityRun) =>
    `marked ${x.markedPriority}: ${x.normalStartedBeforeMarked} normal tasks started before it, done ${ms(x.firstTaskToMarkedCompletedMs)} after the first task started ` +
    `(${ms(x.workerSpawnToMarkedCompletedMs)} after the worker spawn); whole backlog ${ms(x.firstTaskToAllCompletedMs)} ` +
    `(first normal task started at +${ms(x.firstTaskToFirstNormalStartMs)}, longest pause between task starts ${ms(x.longestStartGapMs)})`;
  lines.push(`  priority: ${high.backlog} normal flows queued, then one marked flow, then a worker (concurrency ${high.workerConcurrency}) starts:`);
  lines.push(`    ${prio(high)}`, `    ${prio(baseline)}  (baseline)`);
  lines.push(`    ratio high/baseline time to the marked flow = ${r.priority.markedLatencyRatio ?? "n/a"}; high flow's time / backlog's time = ${r.priority.highShareOfBacklog ?? "n/a"}`);
  for (const x of r.recovery) {
    lines.push(
      `  recovery @ heartbeat timeout ${x.heartbeatTimeoutMs} ms: worker SIGKILL → ${x.delayMs} ms delay step completed on the other worker in ${ms(x.killToStepCompletedMs)} ` +
        `(redelivered handler start ${ms(x.killToRedeliveredStartMs)} after the kill; undisturbed step ${ms(x.undisturbedStartToStepCompletedMs)}; ` +
        `expected ≈ timeout + delay = ${x.expectedMs} ms, ratio ${x.ratioToExpected}; attempt ${x.completedAttempt ?? "n/a"}, by the survivor: ${x.completedBySurvivor ? "yes" : "NO"})`,
    );
  }
  return lines;
}

function cpuText(cpu: Record<string, number>): string {
  return Object.entries(cpu)
    .map(([k, v]) => `${k} ${v}%`)
    .join(", ");
}
