/**
 * `npm run bench`: in one run on one fresh nats-server, (b) the raw JetStream ceiling and
 * (a) the full mesh (engine + worker child processes, PostgreSQL) each run N three-step flows
 * at maximum throughput (closed loop) and then paced at fixed rates (open loop); the results are printed and
 * written to test/bench/results/<timestamp>.json and latest.json. See methodology below.
 *
 * Env: BENCH_FLOWS (5000), BENCH_WARMUP (200), BENCH_WINDOW (flows in flight in the max phase,
 * 2000), BENCH_RATES (paced phases, flows/s, "2000,250"; a phase runs min(BENCH_FLOWS, max(500, 4 s
 * worth)) flows), BENCH_PUBLISH_INFLIGHT (256),
 * BENCH_CONCURRENCY (worker concurrency, 256), BENCH_TEMPLATES (1 = chain step inputs with {% %}),
 * BENCH_PHASE_TIMEOUT_MS (120000), BENCH_ENGINE_MAX_BATCH, BENCH_DB_POOL_SIZE, BENCH_LOG_LEVEL.
 *
 * Resilience (resilience.ts; after the mesh, same nats-server, each on its own prefix and fresh
 * database; about 2 minutes at these defaults, 63 s of it the default-heartbeat recovery):
 * BENCH_RESILIENCE (1; 0 skips the whole part),
 * BENCH_REPLICAS (3 engine processes vs 1, the max phase), BENCH_REPLICA_FLOWS (BENCH_FLOWS),
 * BENCH_PRIORITY_BACKLOG (5000 normal flows queued before the marked one),
 * BENCH_PRIORITY_CONCURRENCY (32, the worker that then drains it), BENCH_PRIORITY_TASK_MS (5, its delay step),
 * BENCH_RECOVERY_HEARTBEAT_MS (2000, the short heartbeat timeout), BENCH_RECOVERY_DEFAULT (1; 0
 * skips the run at the default 60000 ms), BENCH_RECOVERY_DELAY_MS (3000, the killed delay step).
 *
 * Peers (peers/; after the mesh): BENCH_PEERS (1; 0 skips them): BullMQ on a Redis the bench starts
 * (Debian's redis-server, AOF everysec), and pg-boss 10 on a fresh database, driven through the
 * same phases.
 *
 * Context size (context-sizes.ts; last, about a minute): BENCH_CONTEXT (1; 0 skips it),
 * BENCH_CONTEXT_EXECUTIONS (5), BENCH_CONTEXT_PROBES (5). `npm run bench:context` runs it alone.
 * Plumbing (plumbing.ts; after it, about a minute): 10,000 parked waits and progress updates/s;
 * BENCH_PLUMBING (1; 0 skips it), see run-plumbing.ts for its knobs. `npm run bench:plumbing` runs it alone.
 */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, release, totalmem } from "node:os";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { adminDatabaseUrl, checkPostgres, createTestDatabase, redactUrl, type TestDatabase } from "../support/postgres.js";
import { startCeiling, STEPS } from "./ceiling.js";
import { children } from "./child-host.js";
import { cpuPercent, postgresPids, snapshotCpu, type CpuGroups } from "./cpu.js";
import pg from "pg";
import { runPhase, type FlowSystem, type LoadMode } from "./driver.js";
import { MESH_FLOW_ID, startMesh } from "./mesh.js";
import { startBullmq } from "./peers/bullmq.js";
import { redisServerBinary } from "./peers/redis-server.js";
import { startPgBoss } from "./peers/pg-boss.js";
import { contextSizeParams, measureContextSizes } from "./context-sizes.js";
import { measurePlumbing, plumbingParams } from "./plumbing.js";
import { formatResilience, measureResilience, type ResilienceParams } from "./resilience.js";
import { formatReport, ratio, writeReport, type BenchReport, type Measured, type PhaseReport, type SystemReport } from "./report.js";
import { envInt, summarize, withDeadline } from "./stats.js";

const P = {
  flows: envInt("BENCH_FLOWS", 5000, 1),
  warmup: envInt("BENCH_WARMUP", 200, 0),
  window: envInt("BENCH_WINDOW", 2000, 1),
  rates: (process.env["BENCH_RATES"] ?? "2000,250").split(",").map((r) => {
    const n = Number(r.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_RATES=${process.env["BENCH_RATES"]}: expected comma-separated integers ≥ 1`);
    return n;
  }),
  publishInflight: envInt("BENCH_PUBLISH_INFLIGHT", 256, 1),
  concurrency: envInt("BENCH_CONCURRENCY", 256, 1),
  templates: process.env["BENCH_TEMPLATES"] === "1",
  phaseTimeoutMs: envInt("BENCH_PHASE_TIMEOUT_MS", 120_000, 1000),
  meshPrefix: "fm",
  stepsPerFlow: STEPS,
};
const RESILIENCE_DEFAULT_HEARTBEAT_MS = 60_000;
const R: ResilienceParams | undefined =
  process.env["BENCH_RESILIENCE"] === "0"
    ? undefined
    : {
        recoveryHeartbeatsMs: [
          envInt("BENCH_RECOVERY_HEARTBEAT_MS", 2000, 1000),
          ...(process.env["BENCH_RECOVERY_DEFAULT"] === "0" ? [] : [RESILIENCE_DEFAULT_HEARTBEAT_MS]),
        ],
        recoveryDelayMs: envInt("BENCH_RECOVERY_DELAY_MS", 3000, 100),
        priorityBacklog: envInt("BENCH_PRIORITY_BACKLOG", 5000, 1),
        priorityConcurrency: envInt("BENCH_PRIORITY_CONCURRENCY", 32, 1),
        priorityTaskMs: envInt("BENCH_PRIORITY_TASK_MS", 5, 0),
        replicaEngines: envInt("BENCH_REPLICAS", 3, 2),
        replicaFlows: envInt("BENCH_REPLICA_FLOWS", P.flows, 1),
        window: P.window,
        warmup: P.warmup,
        concurrency: P.concurrency,
        publishInflight: P.publishInflight,
        phaseTimeoutMs: P.phaseTimeoutMs,
        stepsPerFlow: STEPS,
      };
const BAR = { flowsPerSec: 2000, medianFlowLatencyMs: 4 };

const cleanups: Array<[string, () => Promise<unknown>]> = [];
async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const [name, fn] = cleanups.pop()!;
    try {
      await withDeadline(fn(), 20_000, `cleanup: ${name}`);
    } catch (err) {
      console.error(`cleanup of ${name} failed: ${(err as Error).message}`);
    }
  }
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    interrupted = true;
    console.error(`\n${sig}: tearing down`);
    void cleanup().finally(() => process.exit(130));
  });
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

const pacedCount = (rate: number) => Math.min(P.flows, Math.max(500, rate * 4));

interface Measurable extends FlowSystem {
  dispatch(ids: string[]): Promise<Measured>;
  /** Where the time goes, hop by hop (the mesh only). */
  hops?(ids: string[]): Promise<PhaseReport["hopsMs"]>;
}


async function measureSystem(name: string, system: Measurable, cpuGroups: () => Promise<CpuGroups>): Promise<SystemReport> {
  const phase = async (label: string, idPrefix: string, count: number, mode: LoadMode): Promise<PhaseReport> => {
    const before = snapshotCpu(await cpuGroups());
    const result = await runPhase(system, { label: `${name} ${label}`, idPrefix, count, mode, publishInflight: P.publishInflight, timeoutMs: P.phaseTimeoutMs, stepsPerFlow: STEPS });
    const cpu = cpuPercent(before, snapshotCpu(await cpuGroups()));
    const { ids, ...rest } = result;
    const hops = system.hops ? await system.hops(ids) : undefined;
    const report: PhaseReport = { ...rest, dispatchToHandlerStartMs: await system.dispatch(ids), ...(hops ? { hopsMs: hops } : {}), cpuPercent: cpu };
    log(`${name} ${label}: ${report.flowsPerSec} flows/s, flow p50 ${report.flowLatencyMs?.p50} ms`);
    return report;
  };
  if (P.warmup > 0) {
    log(`${name}: warm-up, ${P.warmup} flows`);
    await runPhase(system, { label: `${name} warm-up`, idPrefix: `${name}-w`, count: P.warmup, mode: { kind: "window", window: Math.min(P.window, 50) }, publishInflight: P.publishInflight, timeoutMs: P.phaseTimeoutMs, stepsPerFlow: STEPS });
    await system.dispatch([]);
  }
  log(`${name}: ${P.flows} flows, window ${P.window}`);
  const throughput = await phase("max", `${name}-m`, P.flows, { kind: "window", window: P.window });
  const paced: PhaseReport[] = [];
  for (const rate of P.rates) {
    const count = pacedCount(rate);
    log(`${name}: ${count} flows paced at ${rate}/s`);
    paced.push(await phase(`paced@${rate}/s`, `${name}-p${rate}`, count, { kind: "rate", perSecond: rate, maxInflight: 50_000 }));
  }
  return { throughput, paced };
}

function natsServerVersion(): string {
  try {
    return execFileSync(process.env["FM_NATS_SERVER"] || "nats-server", ["--version"], { encoding: "utf8" }).trim();
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

const mb = (bytes: unknown) => (typeof bytes === "number" ? Math.round(bytes / 1024 / 1024) : "n/a");

async function main(): Promise<void> {
  const loadAtStart = loadavg().map((v) => Math.round(v * 100) / 100);
  const pgVersion = await checkPostgres();
  log(`starting nats-server and a fresh database (PostgreSQL ${pgVersion})`);
  const nats: NatsServerHandle = await startNatsServer();
  cleanups.push(["nats-server", () => nats.stop()]);
  const db: TestDatabase = await createTestDatabase();
  cleanups.push([`database ${db.name}`, () => db.drop()]);
  const admin = new pg.Client({ connectionString: adminDatabaseUrl(), connectionTimeoutMillis: 5_000 });
  admin.on("error", () => undefined);
  await admin.connect();
  cleanups.push(["postgres admin connection", () => admin.end()]);
  const groups = (extra: CpuGroups) => async (): Promise<CpuGroups> => ({ ...extra, postgres: await postgresPids(admin, db.name) });
  const nc: NatsConnection = await connect({ servers: nats.url, name: "bench-driver" });
  cleanups.push(["driver connection", () => nc.close()]);

  // (b) the ceiling first, on the fresh server; its worker stops before the mesh starts.
  log("ceiling: starting its worker");
  const ceiling = await startCeiling(nc, nats.url, P.concurrency);
  cleanups.push(["ceiling", () => ceiling.close()]);
  const ceilingReport = await measureSystem(
    "ceiling",
    Object.assign(ceiling, {
      dispatch: async (): Promise<Measured> => {
        const samples = ceiling.takeDispatchSamples();
        return summarize(samples) ?? { na: "no samples" };
      },
    }),
    groups({ main: [process.pid], "ceiling-worker": [ceiling.worker.pid], nats: [nats.pid] }),
  );
  await cleanups.pop()![1]();

  // (a) the mesh.
  log("mesh: starting engine and worker");
  const mesh = await startMesh(nc, nats.url, db.url, { prefix: P.meshPrefix, concurrency: P.concurrency, templates: P.templates });
  cleanups.push(["mesh", () => mesh.close()]);
  const engineBefore = await mesh.engine.request("stats");
  const meshReport = await measureSystem(
    "mesh",
    Object.assign(mesh, {
      dispatch: async (ids: string[]): Promise<Measured> => {
        if (ids.length === 0) return { na: "no flows" };
        const got = await mesh.dispatchSamples(ids);
        if ("na" in got) return got;
        const s = summarize(got.samples);
        if (!s) return { na: `the tasks table had no started_at for these ${ids.length} executions` };
        if (got.samples.length !== got.expected) log(`mesh: ${got.samples.length} dispatch samples for ${got.expected} tasks`);
        return s;
      },
      hops: async (ids: string[]) => {
        const got = await mesh.hopSamples(ids);
        if ("na" in got) return got;
        return Object.fromEntries(Object.entries(got).map(([hop, samples]) => [hop, summarize(samples) ?? { na: "no samples" }]));
      },
    }),
    groups({ main: [process.pid], engine: [mesh.engine.pid], worker: [mesh.worker.pid], nats: [nats.pid] }),
  );
  const engineAfter = await mesh.engine.request("stats");
  const workerAfter = await mesh.worker.request("stats");
  await cleanups.pop()![1]();

  // Peers: BullMQ on Redis, the same phases (BENCH_PEERS=0 skips them).
  const peers: BenchReport["peers"] = {};
  const redisBin = redisServerBinary();
  if (process.env["BENCH_PEERS"] === "0") peers["bullmq"] = { skipped: "BENCH_PEERS=0" };
  else if (!redisBin) peers["bullmq"] = { skipped: "redis-server is not installed (Debian: apt-get install redis-server)" };
  else {
    log("bullmq: starting Redis (AOF everysec) and its worker");
    const bull = await startBullmq(redisBin, P.concurrency);
    cleanups.push(["bullmq", () => bull.close()]);
    peers["bullmq"] = await measureSystem(
      "bullmq",
      Object.assign(bull, { dispatch: async (): Promise<Measured> => ({ na: "not measured for peers" }) }),
      groups({ main: [process.pid], ...bull.pids, nats: [] }),
    );
    await cleanups.pop()![1]();
  }
  if (process.env["BENCH_PEERS"] === "0") peers["pg-boss"] = { skipped: "BENCH_PEERS=0" };
  else {
    log("pg-boss: a fresh database, its workers in this process");
    const bossDb = await createTestDatabase();
    cleanups.push([`database ${bossDb.name}`, () => bossDb.drop()]);
    const boss = await startPgBoss(bossDb.url);
    cleanups.push(["pg-boss", () => boss.close()]);
    peers["pg-boss"] = await measureSystem(
      "pg-boss",
      Object.assign(boss, { dispatch: async (): Promise<Measured> => ({ na: "not measured for peers" }) }),
      async () => ({ main: [process.pid], postgres: await postgresPids(admin, bossDb.name) }),
    );
    await cleanups.pop()![1]();
  }

  /** A new empty database for one later part, dropped with the rest at the end. */
  const freshDatabase = async () => {
    const fresh = await createTestDatabase();
    cleanups.push([`database ${fresh.name}`, () => fresh.drop()]);
    return fresh;
  };
  const resilience = R
    ? await measureResilience(
        {
          nc,
          natsUrl: nats.url,
          freshDatabase,
          cpuGroups: async (extra, dbName) => ({ ...extra, nats: [nats.pid], postgres: await postgresPids(admin, dbName) }),
          log,
        },
        R,
      )
    : undefined;

  const contextSizes =
    process.env["BENCH_CONTEXT"] === "0"
      ? undefined
      : await measureContextSizes(
          {
            nc,
            natsUrl: nats.url,
            freshDatabase,
            log,
          },
          contextSizeParams(),
        );

  const plumbing = process.env["BENCH_PLUMBING"] === "0" ? undefined : await measurePlumbing({ nc, natsUrl: nats.url, freshDatabase, log }, plumbingParams());

  const barIndex = P.rates.indexOf(BAR.flowsPerSec);
  const barPhase = barIndex >= 0 ? meshReport.paced[barIndex] : undefined;
  const barP50 = barPhase?.flowLatencyMs?.p50;
  const report: BenchReport = {
    timestamp: new Date().toISOString(),
    parameters: { ...P, meshFlowId: MESH_FLOW_ID, bar: BAR, resilience: R ?? "skipped (BENCH_RESILIENCE=0)" },
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      totalMemMB: Math.round(totalmem() / 1024 / 1024),
      kernel: release(),
      loadavgAtStart: loadAtStart,
      node: process.version,
      natsServer: natsServerVersion(),
      postgres: pgVersion,
      database: redactUrl(db.url).replace(/\/fm_test_\w+$/, "/<fresh database>"),
    },
    ceiling: ceilingReport,
    mesh: meshReport,
    peers,
    ratios: {
      throughput: ratio(meshReport.throughput, ceilingReport.throughput),
      paced: meshReport.paced.map((m, i) => ratio(m, ceilingReport.paced[i] as PhaseReport)),
    },
    resilience: resilience ?? { skipped: "BENCH_RESILIENCE=0" },
    contextSizes: contextSizes ?? { skipped: "BENCH_CONTEXT=0" },
    plumbing: plumbing ?? { skipped: "BENCH_PLUMBING=0" },
    memory: {
      engineRssBeforeMB: mb(engineBefore["rss"]),
      engineRssAfterMB: mb(engineAfter["rss"]),
      workerRssAfterMB: mb(workerAfter["rss"]),
      engineCpuSeconds: Math.round(((Number(engineAfter["cpuUserUs"]) + Number(engineAfter["cpuSystemUs"])) / 1e6) * 10) / 10,
    },
    bar: {
      ...BAR,
      met:
        barPhase !== undefined &&
        barPhase.startsPerSec >= BAR.flowsPerSec * 0.98 &&
        barPhase.flowsPerSec >= BAR.flowsPerSec * 0.95 &&
        (barP50 ?? Infinity) < BAR.medianFlowLatencyMs,
      basis: barPhase
        ? `mesh paced phase: ${barPhase.flows} flows offered at ${BAR.flowsPerSec}/s, completed at ${barPhase.flowsPerSec.toFixed(0)} flows/s, p50 ${barP50 ?? "n/a"} ms`
        : `not evaluated: BENCH_RATES has no ${BAR.flowsPerSec}/s phase`,
    },
    methodology: [
      `One nats-server (${natsServerVersion()}, fresh temp store, file storage) serves both systems; the ceiling runs first and its worker exits before the mesh starts. Engine, mesh worker and ceiling worker are separate node processes; the load generator and the ceiling's collector run in the main process.`,
      `Flow latency: this process's clock from just before the start is published to the moment the completion is received (ceiling: the third result consumed by the collector; mesh: the engine's core '${P.meshPrefix}.exec.${MESH_FLOW_ID}.<exec>.completed' event). Starts are JetStream publishes, at most ${P.publishInflight} unacknowledged at once.`,
      `"max" phase: closed loop, at most ${P.window} flows in flight, so its latency includes queueing at saturation. "paced" phases: open loop, starts issued at ${P.rates.join(" and ")} flows/s regardless of completions, so latency is what a flow sees at that offered load. flows/s = flows / (first start → last completion). steps/s = 3 × flows/s. ${P.warmup} warm-up flows per system are not counted.`,
      "Dispatch→handler start, ceiling: the collector stamps each task with its sub-ms wall clock when it creates it, the worker process subtracts that from its own wall clock on receipt (same machine clock).",
      "Dispatch→handler start, mesh: tasks.started_at − tasks.dispatched_at from the engine's database after the phase: dispatched_at is the engine's clock when it decided the dispatch (before its transaction commits and the outbox relay publishes); started_at is the worker's metrics.startedAt when the handler is called. Both have millisecond resolution, so each sample is ±1 ms.",
      `Ceiling: work-queue streams 'BENCH_CEILING_TASKS'/'BENCH_CEILING_RESULTS' (file storage, Nats-Msg-Id on every publish like the mesh), worker consumer max_ack_pending ${P.concurrency} (= mesh worker concurrency), worker publishes the result, awaits its ack, then acks the task; the collector acks results and publishes step k+1's task, no engine, no Postgres, no schema validation.`,
      `Peers (BENCH_PEERS=0 skips them): BullMQ ${"6"} on its own redis-server (Debian's, started by the bench on a free loopback port, appendonly yes, appendfsync everysec, no RDB), a 3-queue chain — steps 1 and 2 run echo and add the next step's job, step 3 returns — one worker process with one Worker per queue at concurrency ${P.concurrency}, completion from the last queue's QueueEvents ('completed'); starts are Queue.add from this process. Its "dispatch→handler" is not measured. 'redis' in its CPU line is the server.`,
      `pg-boss 10.4 (the newest that runs on Node 20) on its own fresh database of the same PostgreSQL: the same 3-queue chain, each step's handler inserting the next step's jobs, 4 workers per queue with batches of 64, its workers in the driver's process and woken right after each send (notifyWorker; it would otherwise poll every 0.5 s) — its most favourable setup; a flow is done when the third step's handler runs.`,
      `Mesh flow '${MESH_FLOW_ID}': three echo steps with ${P.templates ? "{% %}-chained inputs" : "literal inputs"}, one engine (default batching unless BENCH_ENGINE_MAX_BATCH), one worker (concurrency ${P.concurrency}). CPU % is of one core over the phase (machine = whole box, ${cpus().length} cores = ${cpus().length * 100}%); 'postgres' is the backends of the benchmark's database plus the server's background processes; 'other' is everything else on the box (other users' processes), which skews the numbers when high.`,
      ...(R
        ? [
            `Resilience: each measurement below runs after the mesh, on the same nats-server, with its own subject prefix (so its own streams and durable consumers), its own fresh database and its own engine/worker child processes.`,
            `Replicas: the max phase (closed loop, ${R.replicaFlows} three-step echo flows, window ${R.window}, after ${R.warmup} warm-up flows) against 1 engine process, then against ${R.replicaEngines} engine processes on one prefix and one database (they share the durable consumers), one worker (concurrency ${R.concurrency}) each time; ratio = flows/s with ${R.replicaEngines} / flows/s with 1. On ${cpus().length} cores the extra engines compete with the worker, nats-server and PostgreSQL for the same CPUs.`,
            `Priority: with no worker serving 'delay', ${R.priorityBacklog} flows with priority "normal" (one ${R.priorityTaskMs} ms delay step) are published and waited for in the task stream, then one marked flow, then a worker (concurrency ${R.priorityConcurrency}) is spawned. "normal tasks started before it" counts tasks.started_at (the worker's clock at handler start) earlier than the marked task's; times run from the first task's started_at (or the worker spawn) to the completed events (this process's clock, same machine). Baseline: the same with the marked flow "normal" (published last), on its own prefix and database.`,
            `Recovery: an engine and two workers serving 'delay' with the heartbeat timeout (the pool consumer's ack_wait, worker option heartbeatTimeoutMs) at ${R.recoveryHeartbeatsMs.join(" and ")} ms, one prefix per setting. A one-step flow (delay ${R.recoveryDelayMs} ms) runs once undisturbed (baseline), then again; at its first progress message the worker whose stats show the running task is SIGKILLed, and the time from the kill to the engine's step.completed event is measured. The task goes back when the ack_wait since its last in-progress ack runs out, and the delay then runs in full, so ≈ timeout + delay is expected; "redelivered handler start" is the survivor's tasks.started_at.`,
          ]
        : []),
    ],
  };
  console.log(formatReport(report));
  const written = await writeReport(report);
  console.log(`\nwrote ${written.file}\n  and ${written.latest}`);
}

try {
  await main();
} catch (err) {
  if (!interrupted) {
    console.error(`\nbench failed: ${(err as Error).stack ?? String(err)}`);
    for (const child of children) console.error(`\n--- ${child.name} (pid ${child.pid}) log tail ---\n${child.logs(30)}`);
    process.exitCode = 1;
  }
} finally {
  if (!interrupted) await cleanup();
}
if (!interrupted) process.exit(process.exitCode ?? 0);
