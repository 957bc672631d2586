/**
 * `npm run bench:sandbox`: what running a handler in a sandbox costs, measured in one run
 * against the same handler in process.
 *
 * Ceiling (no NATS; BENCH_SANDBOX_CEILING=0 skips it):
 *  - per-task overhead, p50/p99: in process vs a warm sandbox (stateless pool) vs a cold start
 *    (stateful mode: a fresh process per task), each through the worker's runner (executeTask)
 *    without NATS, so that only the sandbox differs;
 *  - stateless tasks/s on this machine (a pool of one sandbox per core, 16 tasks in flight),
 *    against in-process tasks/s with the same load.
 * BENCH_TASKS (default 2000) and BENCH_COLD (default 60) set the sample sizes.
 *
 * Whole worker (sandbox-mesh.ts; BENCH_SANDBOX_MESH=0 skips it): executions/s and start →
 * completed latency of one-step flows through nats-server, the engine and PostgreSQL, the worker
 * serving the handler in process vs sandboxed; see sandbox-mesh.ts for its knobs.
 */
import { availableParallelism } from "node:os";
import { defineHandler } from "../../worker/src/sdk/define-handler.js";
import type { AnyHandler } from "../../worker/src/sdk/define-handler.js";
import { makeTask, runHandler } from "../../worker/test/helpers.js";
import { bundleOf, sandboxFor } from "../../worker/test/sandbox-helpers.js";
import { children } from "./child-host.js";
import { SUM_INPUT, SUM_SOURCE, sumItems } from "./sandbox-handler.js";
import { formatSandboxMesh, measureSandboxMesh, sandboxMeshParams, writeSandboxMeshReport } from "./sandbox-mesh.js";
import { summarize, type LatencySummary } from "./stats.js";

const TASKS = Number(process.env["BENCH_TASKS"] ?? 2000);
const COLD = Number(process.env["BENCH_COLD"] ?? 60);
const CORES = availableParallelism();

// The same small handler in both worlds: a bit of JSON work on its input.
const SOURCE = SUM_SOURCE;
const inProcess = defineHandler({ type: "bench", execute: (ctx) => sumItems(ctx.input) });
const input = SUM_INPUT;

async function once(handler: AnyHandler): Promise<number> {
  const t0 = performance.now();
  const outcome = await runHandler(handler, makeTask({ type: "bench", input })).outcome;
  const ms = performance.now() - t0;
  if (outcome.kind !== "result" || outcome.result.outcome !== "success") throw new Error(`bench task failed: ${JSON.stringify(outcome)}`);
  return ms;
}

async function latencies(handler: AnyHandler, n: number): Promise<LatencySummary> {
  for (let i = 0; i < Math.min(50, n); i++) await once(handler); // warm-up (JIT, pool)
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(await once(handler));
  return summarize(samples)!;
}

async function throughput(handler: AnyHandler, inFlight: number, ms: number): Promise<number> {
  let done = 0;
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await once(handler);
        done++;
      }
    }),
  );
  return Math.round(done / (ms / 1000));
}

const fmt = (s: LatencySummary) => `p50 ${s.p50.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms  mean ${s.mean.toFixed(3)} ms  (n=${s.count})`;

async function ceiling(): Promise<void> {
  const warm = await sandboxFor(bundleOf(SOURCE, { type: "bench", timeout: { hardMs: 10_000 } }), { size: 1 });
  const cold = await sandboxFor(bundleOf(SOURCE, { type: "bench", mode: "stateful", timeout: { hardMs: 10_000 } }));
  // The same without the OS layers (isolation.ts: own uid, namespaces, read-only mounts, rlimits): what they cost.
  const bareWarm = await sandboxFor(bundleOf(SOURCE, { type: "bench", timeout: { hardMs: 10_000 } }), { size: 1, isolated: false });
  const bareCold = await sandboxFor(bundleOf(SOURCE, { type: "bench", mode: "stateful", timeout: { hardMs: 10_000 } }), { isolated: false });
  try {
    const inProc = await latencies(inProcess, TASKS);
    const warmLat = await latencies(warm.handler, TASKS);
    const coldLat = await latencies(cold.handler, COLD);
    const bareWarmLat = await latencies(bareWarm.handler, TASKS);
    const bareColdLat = await latencies(bareCold.handler, COLD);
    console.log(`sandbox overhead per task (${CORES} cores; same handler, same runner):`);
    console.log(`  in process      ${fmt(inProc)}`);
    console.log(`  warm sandbox    ${fmt(warmLat)}   → +${(warmLat.p50 - inProc.p50).toFixed(3)} ms at p50`);
    console.log(`  cold start      ${fmt(coldLat)}   → ×${(coldLat.p50 / warmLat.p50).toFixed(0)} a warm run at p50`);
    console.log(`OS isolation layers (same runs without the launcher chain):`);
    console.log(`  warm, no OS layers  ${fmt(bareWarmLat)}   → the layers add ${(warmLat.p50 - bareWarmLat.p50).toFixed(3)} ms at p50 (×${(warmLat.p50 / bareWarmLat.p50).toFixed(2)})`);
    console.log(`  cold, no OS layers  ${fmt(bareColdLat)}   → the layers add ${(coldLat.p50 - bareColdLat.p50).toFixed(1)} ms at p50 (×${(coldLat.p50 / bareColdLat.p50).toFixed(2)})`);
    warm.close();
    bareWarm.close();
    bareCold.close();

    const pool = await sandboxFor(bundleOf(SOURCE, { type: "bench", timeout: { hardMs: 10_000 } }), { size: CORES });
    const inProcRate = await throughput(inProcess, 16, 3000);
    const poolRate = await throughput(pool.handler, 16, 3000);
    pool.close();
    console.log(`stateless tasks/s (16 in flight, 3 s each, no NATS):`);
    console.log(`  in process                 ${inProcRate}/s`);
    console.log(`  sandbox pool of ${CORES}          ${poolRate}/s   (${((poolRate / inProcRate) * 100).toFixed(1)} % of in process)`);
  } finally {
    warm.close();
    cold.close();
  }
}

if (process.env["BENCH_SANDBOX_CEILING"] !== "0") await ceiling();
if (process.env["BENCH_SANDBOX_MESH"] !== "0") {
  try {
    const report = await measureSandboxMesh(sandboxMeshParams(), (msg) => process.stderr.write(`[bench] ${msg}\n`));
    console.log(formatSandboxMesh(report));
    console.log(`(written to ${await writeSandboxMeshReport(report)})`);
  } catch (err) {
    console.error(`sandbox mesh bench failed: ${(err as Error).stack ?? String(err)}`);
    for (const child of children) console.error(`\n--- ${child.name} (pid ${child.pid}) log tail ---\n${child.logs(30)}`);
    process.exitCode = 1;
  }
}
process.exit(process.exitCode ?? 0);
