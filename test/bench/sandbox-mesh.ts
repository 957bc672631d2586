/**
 * Stateless tasks/s of a WHOLE worker through NATS and the engine, sandboxed against in process,
 * measured in one run (the part of `npm run bench:sandbox` after the no-NATS ceiling).
 *
 * One nats-server and one fresh PostgreSQL database; one engine (engine-proc.ts) and one worker
 * (sandbox-worker-proc.ts) as child processes, so each has its own event loop as in production,
 * and this process only drives the load. A one-step flow per variant; the step's handler is the
 * same small handler (sandbox-handler.ts: sum 50 items) either
 *   - in process: a trusted defineHandler in the worker, or
 *   - sandboxed: the same logic as a stateless bundle (`bundleOf`) loaded from a handler
 *     directory by the worker (`sandbox.handlerDir`), served by a warm pool of N processes.
 * Each variant gets a fresh worker process (same engine, same database); the in-process baseline
 * runs first. Per variant: BENCH_SANDBOX_MESH_WARMUP executions (not counted), then
 * BENCH_SANDBOX_MESH_EXECUTIONS with at most BENCH_SANDBOX_MESH_WINDOW in flight (closed loop:
 * executions completed per second, and start → completed latency at that load, queueing
 * included), then BENCH_SANDBOX_MESH_SERIAL executions one at a time (start → completed with
 * no queue: the per-execution cost).
 *
 * Env: BENCH_SANDBOX_MESH_EXECUTIONS (2000), BENCH_SANDBOX_MESH_WARMUP (200),
 * BENCH_SANDBOX_MESH_WINDOW (128), BENCH_SANDBOX_MESH_SERIAL (100),
 * BENCH_SANDBOX_MESH_CONCURRENCY (worker concurrency, 16), BENCH_SANDBOX_MESH_POOLS (sandbox pool
 * sizes, comma-separated; default 2 — the worker's default — and the number of cores when that
 * differs), BENCH_SANDBOX_MESH_TIMEOUT_MS (per phase, 60000). Writes
 * test/bench/results/sandbox-mesh-latest.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { BUNDLE_FILES, createApiClient, createSubjects, encode, refName } from "@flowmonkey/shared";
import { startNatsServer } from "@flowmonkey/shared/dev";
import pg from "pg";
import { bundleOf } from "../../worker/test/sandbox-helpers.js";
import { adminDatabaseUrl, checkPostgres, createTestDatabase } from "../support/postgres.js";
import { spawnChild, type ChildHandle } from "./child-host.js";
import { cpuPercent, descendantPids, postgresPids, snapshotCpu, type CpuGroups } from "./cpu.js";
import { runPhase, type FlowSystem } from "./driver.js";
import { SUM_INPUT, SUM_SOURCE } from "./sandbox-handler.js";
import { envInt, round, withDeadline, type LatencySummary } from "./stats.js";

export interface SandboxMeshParams {
  executions: number;
  warmup: number;
  window: number;
  serial: number;
  concurrency: number;
  pools: number[];
  phaseTimeoutMs: number;
}

export function sandboxMeshParams(): SandboxMeshParams {
  const cores = availableParallelism();
  const raw = process.env["BENCH_SANDBOX_MESH_POOLS"];
  const pools = raw
    ? raw.split(",").map((s) => {
        const n = Number(s.trim());
        if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_SANDBOX_MESH_POOLS=${raw}: expected comma-separated integers ≥ 1`);
        return n;
      })
    : [...new Set([2, cores])];
  return {
    executions: envInt("BENCH_SANDBOX_MESH_EXECUTIONS", 2000, 1),
    warmup: envInt("BENCH_SANDBOX_MESH_WARMUP", 200, 0),
    window: envInt("BENCH_SANDBOX_MESH_WINDOW", 128, 1),
    serial: envInt("BENCH_SANDBOX_MESH_SERIAL", 100, 0),
    concurrency: envInt("BENCH_SANDBOX_MESH_CONCURRENCY", 16, 1),
    pools,
    phaseTimeoutMs: envInt("BENCH_SANDBOX_MESH_TIMEOUT_MS", 60_000, 1000),
  };
}

export interface VariantReport {
  label: string;
  handler: string;
  /** Warm sandbox processes; undefined = in process. */
  sandboxPool: number | undefined;
  /** Closed loop, `window` in flight: executions completed per second (first start → last completion). */
  executionsPerSec: number;
  wallMs: number;
  /** start → completed under that load (queueing included), ms. */
  loadedLatencyMs: LatencySummary | undefined;
  /** start → completed, one execution at a time, ms. */
  serialLatencyMs: LatencySummary | undefined;
  /** % of one core over the closed-loop phase, per component (sandboxes = the worker's child processes). */
  cpuPercent: Record<string, number>;
  /** executionsPerSec / the in-process variant's. */
  ratioToInProcess: number;
}

export interface SandboxMeshReport {
  at: string;
  machine: { cores: number; node: string; loadavgStart: number[]; loadavgEnd: number[] };
  params: SandboxMeshParams;
  variants: VariantReport[];
  notes: string[];
}

const IN_PROCESS_TYPE = "bench-sum";
const SANDBOXED_TYPE = "bench-sum-sandboxed";
const PUBLISH_INFLIGHT = 64;


/** Writes the sandboxed handler's bundle as `flowmonkey handler build` lays it out: `<dir>/<type>@<version>/{manifest.json,handler.js}`. */
async function writeBundle(dir: string): Promise<void> {
  const bundle = bundleOf(SUM_SOURCE, { type: SANDBOXED_TYPE, version: "1.0.0", mode: "stateless", timeout: { hardMs: 10_000 } });
  const base = join(dir, refName(bundle.manifest));
  await mkdir(base, { recursive: true });
  await writeFile(join(base, BUNDLE_FILES.manifest), JSON.stringify(bundle.manifest));
  await writeFile(join(base, BUNDLE_FILES.code), bundle.code);
}

export async function measureSandboxMesh(p: SandboxMeshParams, log: (msg: string) => void): Promise<SandboxMeshReport> {
  const loadavgStart = loadavg().map((l) => round(l, 2));
  await checkPostgres();
  const nats = await startNatsServer();
  const db = await createTestDatabase();
  const admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  admin.on("error", () => undefined);
  const work = await mkdtemp(join(tmpdir(), "fm-bench-sandbox-"));
  let nc: NatsConnection | undefined;
  let engine: ChildHandle | undefined;
  let worker: ChildHandle | undefined;
  const subs: Subscription[] = [];
  try {
    await admin.connect();
    nc = await connect({ servers: nats.url, name: "bench-sandbox-mesh" });
    const handlerDir = join(work, "handlers");
    await writeBundle(handlerDir);
    const prefix = "fm";
    const childEnv = { NATS_URL: nats.url, BENCH_PREFIX: prefix, DATABASE_URL: db.url };
    engine = await spawnChild("engine", "./engine-proc.ts", childEnv);
    const api = createApiClient(nc, { prefix, timeoutMs: 15_000 });
    const subjects = createSubjects(prefix);
    const js = jetstream(nc);

    // The load driver's view of one flow: start = a JetStream FlowStart with our executionId;
    // done = the engine's core exec event (completed, or failed/cancelled, which abort the run).
    const systemFor = async (flowId: string, handler: string): Promise<FlowSystem> => {
      await api.putFlow({ id: flowId, version: "1.0.0", steps: [{ id: "sum", handler, input: SUM_INPUT }] });
      const startSubject = subjects.flowStart(flowId);
      const system: FlowSystem = { onDone: () => undefined, start: (id) => js.publish(startSubject, encode({ input: {}, executionId: id })) };
      const execPrefix = subjects.execOfFlow(flowId).replace(/>$/, "");
      for (const event of ["completed", "failed", "cancelled"] as const) {
        subs.push(
          nc!.subscribe(`${execPrefix}*.${event}`, {
            callback: (err, msg) => {
              if (err) return;
              const executionId = msg.subject.split(".")[3] as string;
              if (event === "completed") system.onDone(executionId, true);
              else system.onDone(executionId, false, `${event}: ${msg.string().slice(0, 500)}`);
            },
          }),
        );
      }
      await withDeadline(nc!.flush(), 5_000, "flushing the completion subscriptions");
      return system;
    };

    const variants: Array<{ label: string; flowId: string; handler: string; pool: number | undefined }> = [
      { label: "in process", flowId: "sbx-in-process", handler: IN_PROCESS_TYPE, pool: undefined },
      ...p.pools.map((pool) => ({ label: `sandbox pool ${pool}`, flowId: `sbx-pool-${pool}`, handler: SANDBOXED_TYPE, pool })),
    ];
    const reports: VariantReport[] = [];
    for (const [n, v] of variants.entries()) {
      const system = await systemFor(v.flowId, v.handler);
      worker = await spawnChild(`worker (${v.label})`, "./sandbox-worker-proc.ts", {
        ...childEnv,
        BENCH_HANDLER_TYPE: v.handler,
        BENCH_CONCURRENCY: String(p.concurrency),
        ...(v.pool !== undefined ? { BENCH_HANDLER_DIR: handlerDir, BENCH_SANDBOX_POOL: String(v.pool) } : {}),
      });
      const phase = (label: string, count: number, window: number) =>
        runPhase(system, { label: `${v.label} ${label}`, idPrefix: `v${n}-${label}`, count, mode: { kind: "window", window }, publishInflight: PUBLISH_INFLIGHT, timeoutMs: p.phaseTimeoutMs, stepsPerFlow: 1 });
      if (p.warmup > 0) await phase("warmup", p.warmup, Math.min(p.window, 50));
      const workerPid = worker.pid;
      const groups = async (): Promise<CpuGroups> => ({
        main: [process.pid],
        engine: [engine!.pid],
        worker: [workerPid],
        sandboxes: descendantPids(workerPid),
        nats: [nats.pid],
        postgres: await postgresPids(admin, db.name),
      });
      const before = snapshotCpu(await groups());
      const loaded = await phase("max", p.executions, p.window);
      const cpu = cpuPercent(before, snapshotCpu(await groups()));
      const serial = p.serial > 0 ? await phase("serial", p.serial, 1) : undefined;
      await worker.stop();
      worker = undefined;
      const base = reports[0]?.executionsPerSec ?? loaded.flowsPerSec;
      const report: VariantReport = {
        label: v.label,
        handler: v.handler,
        sandboxPool: v.pool,
        executionsPerSec: loaded.flowsPerSec,
        wallMs: loaded.wallMs,
        loadedLatencyMs: loaded.flowLatencyMs,
        serialLatencyMs: serial?.flowLatencyMs,
        cpuPercent: cpu,
        ratioToInProcess: round(loaded.flowsPerSec / base, 3),
      };
      reports.push(report);
      log(`${v.label}: ${report.executionsPerSec} executions/s, loaded p50 ${report.loadedLatencyMs?.p50} ms, serial p50 ${report.serialLatencyMs?.p50 ?? "-"} ms`);
    }
    const cores = availableParallelism();
    return {
      at: new Date().toISOString(),
      machine: { cores, node: process.version, loadavgStart, loadavgEnd: loadavg().map((l) => round(l, 2)) },
      params: p,
      variants: reports,
      notes: [
        `One nats-server, one PostgreSQL database, one engine and one worker (concurrency ${p.concurrency}), each a process of its own on the same ${cores} cores; this process drives the load.`,
        `A one-step flow whose handler sums 50 items of a ~1.3 KB input: in process (a trusted defineHandler in the worker) or the same logic as a stateless sandbox bundle loaded from a handler directory (warm pool of N processes). A fresh worker process per variant, in the order listed.`,
        `executions/s: ${p.executions} executions with at most ${p.window} in flight (closed loop), first start → last completion, after ${p.warmup} warm-up executions. Loaded latency: start (JetStream publish of FlowStart) → the engine's completed event, queueing included. Serial: ${p.serial} executions one at a time.`,
        `CPU % is of one core over the closed-loop phase; sandboxes = the worker's child processes; machine = the whole box (${cores * 100}% = all cores); other = everything else on the box.`,
      ],
    };
  } finally {
    for (const s of subs) s.unsubscribe();
    await worker?.stop();
    await engine?.stop();
    await nc?.close();
    await nats.stop();
    await admin.end().catch(() => undefined);
    await db.drop();
    await rm(work, { recursive: true, force: true });
  }
}

const ms = (s: LatencySummary | undefined) => (s ? `p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms` : "-");

export function formatSandboxMesh(r: SandboxMeshReport): string {
  const p = r.params;
  const lines = [
    `whole worker through NATS + engine (1 engine, 1 worker of concurrency ${p.concurrency}, one-step flow, ${p.executions} executions, ${p.window} in flight; load ${r.machine.loadavgStart.join(" ")} → ${r.machine.loadavgEnd.join(" ")}):`,
  ];
  for (const v of r.variants) {
    const cpu = ["worker", "sandboxes", "engine", "nats", "postgres", "main", "machine", "other"].map((k) => `${k} ${v.cpuPercent[k] ?? "-"}%`).join(" ");
    lines.push(
      `  ${v.label.padEnd(16)} ${String(v.executionsPerSec).padStart(7)} executions/s  ${v.sandboxPool === undefined ? "(baseline)" : `(${(v.ratioToInProcess * 100).toFixed(1)} % of in process)`}`,
      `  ${"".padEnd(16)} start→completed loaded ${ms(v.loadedLatencyMs)}; one at a time ${ms(v.serialLatencyMs)}`,
      `  ${"".padEnd(16)} cpu: ${cpu}`,
    );
  }
  return lines.join("\n");
}

export async function writeSandboxMeshReport(r: SandboxMeshReport): Promise<string> {
  const dir = join(import.meta.dirname, "results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, "sandbox-mesh-latest.json");
  await writeFile(file, JSON.stringify(r, null, 2) + "\n");
  return file;
}
