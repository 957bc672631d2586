/**
 * `npm run bench:regions`: a hub and two leaf regions from nats-config/*.conf on this machine
 * (loopback: the numbers are the mesh's own hops, not a WAN), engine at the hub, one worker per
 * region. Measures, per execution of one echo step, start → completed as the engine records it:
 *   same-region   the step runs in us-east-1 (task and result in the hub's domain);
 *   cross-region  the step is pinned to eu-west-1 (task stored in the leaf's domain, result
 *                 sourced from the leaf's results stream into the hub's);
 * and the link-outage drain: BENCH_REGION_OUTAGE tasks are stored in eu-west-1, the link is cut,
 * the region runs them all, the link returns; time from restore to the last completed execution.
 * Env: BENCH_REGION_SAMPLES (200 per kind, sequential), BENCH_REGION_OUTAGE (500).
 * Writes test/bench/results/regions-latest.json.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { createTestDatabase } from "../support/postgres.js";
import { startRegionMesh } from "../support/region-mesh.js";
import { ROLES, startTopology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const SAMPLES = Number(process.env["BENCH_REGION_SAMPLES"] ?? 200);
const OUTAGE = Number(process.env["BENCH_REGION_OUTAGE"] ?? 500);
const EU = "eu-west-1";

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50: r(percentile(s, 50)), p95: r(percentile(s, 95)), p99: r(percentile(s, 99)), max: r(s[s.length - 1]!) };
};

const database = await createTestDatabase();
const topology = await startTopology([EU, "ap-south-1"]);
const mesh = await startRegionMesh(topology, { databaseUrl: database.url });
try {
  await mesh.startWorker("us-east-1", { handlers: ["echo"], concurrency: 64 });
  await mesh.startWorker(EU, { handlers: ["echo"], concurrency: 64 });
  await mesh.api.putFlow({ id: "same-region", steps: [{ id: "s", handler: "echo", input: { x: 1 } }] });
  await mesh.api.putFlow({ id: "cross-region", steps: [{ id: "s", handler: "echo", region: EU, input: { x: 1 } }] });

  const latency = async (flowId: string): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < SAMPLES + 20; i++) {
      const t0 = performance.now();
      const { executionId } = await mesh.api.start(flowId, {});
      await mesh.waitForStatus(executionId, "completed");
      if (i >= 20) out.push(performance.now() - t0); // the first 20 warm up
    }
    return out;
  };
  // Interleaved would be fairer on a busy box; sequential keeps each kind's numbers clean of the other.
  const same = summary(await latency("same-region"));
  const cross = summary(await latency("cross-region"));

  // Link outage: OUTAGE tasks stored in eu, link cut, all run there, link restored.
  const euLocal = await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine);
  const seq = async (stream: string) => (await (await jetstreamManager(euLocal)).streams.info(stream)).state.last_seq;
  const resultsBefore = await seq(mesh.names.regionStreams.results(EU));
  const tasksBefore = await seq(mesh.names.streams.tasks);
  const link = topology.leaves[EU]!.link;
  const ids = await Promise.all(Array.from({ length: OUTAGE }, () => mesh.api.start("cross-region", {}).then((r) => r.executionId)));
  await waitFor(async () => (await seq(mesh.names.streams.tasks)) >= tasksBefore + OUTAGE, { timeoutMs: 60_000, message: "tasks stored in eu" });
  link.cut();
  await waitFor(async () => (await seq(mesh.names.regionStreams.results(EU))) >= resultsBefore + OUTAGE, { timeoutMs: 60_000, message: "eu results during the outage" });
  const restoredAt = performance.now();
  link.restore();
  await topology.waitForLink(EU, 30_000);
  const relinkMs = performance.now() - restoredAt;
  const completedCount = async () =>
    (await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions WHERE id = ANY($1::text[]) AND status = 'completed'", [ids])).rows[0]?.n ?? 0;
  await waitFor(async () => (await completedCount()) === OUTAGE, { timeoutMs: 120_000, intervalMs: 20, message: "all outage executions completed" });
  const drainMs = performance.now() - restoredAt;

  const result = {
    at: new Date().toISOString(),
    note: "loopback, hub + 2 leaves from nats-config; start → completed per execution of one echo step (ms)",
    sameRegion: same,
    crossRegion: cross,
    outage: { tasks: OUTAGE, relinkMs: Math.round(relinkMs), drainAfterRestoreMs: Math.round(drainMs) },
  };
  console.log(JSON.stringify(result, null, 2));
  const dir = join(import.meta.dirname, "results");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "regions-latest.json"), JSON.stringify(result, null, 2) + "\n");
} finally {
  await mesh.close();
  await topology.stop();
  await database.drop();
}
