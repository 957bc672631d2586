/**
 * `npm run bench:map`: what a map step's item costs, against a plain step measured in the same
 * run. One nats-server, one PostgreSQL database, the engine and an `echo` worker as child
 * processes (as in `npm run bench`):
 *  - baseline: BENCH_MAP_ITEMS / 3 three-step `echo` flows (as many tasks as the map has items),
 *    BENCH_MAP_CONCURRENCY in flight;
 *  - map: ONE execution whose step maps `echo` over BENCH_MAP_ITEMS items (default 10,000),
 *    concurrency BENCH_MAP_CONCURRENCY (default 256).
 * Printed: tasks/s of each and their ratio; WAL bytes written per task (an item result that
 * rewrote the whole list would write ~list-size bytes per item); the execution row's largest
 * size while the items ran (counters, not the list); the engine's RSS before, at its peak, and
 * after. Writes test/bench/results/map-<time>.json.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { createApiClient } from "@flowmonkey/shared";
import { runPhase } from "./driver.js";
import { startMeshRig } from "./rig.js";
import { envInt, round } from "./stats.js";

const ITEMS = envInt("BENCH_MAP_ITEMS", 10_000, 3);
const CONCURRENCY = envInt("BENCH_MAP_CONCURRENCY", 256, 1);
const log = (msg: string) => process.stderr.write(`[map] ${msg}\n`);

const rig = await startMeshRig("map-driver");
const { nats, db, sql: admin, nc, mesh } = rig;
const api = createApiClient(nc, { prefix: "fm" });

const walLsn = async () => (await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn;
const walBytesSince = async (lsn: string) =>
  Number((await admin.query<{ bytes: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint AS bytes", [lsn])).rows[0]!.bytes);
const engineRss = async () => (await mesh.engine.request<{ rss: number }>("stats")).rss;
const mb = (bytes: number) => round(bytes / 1048576, 1);

try {
  log(`${ITEMS} items, concurrency ${CONCURRENCY}; nats-server ${nats.url}, database ${db.name}`);
  // Warm-up: the engine's caches and the worker's consumers, off the clock.
  await runPhase(mesh, { label: "warm-up", idPrefix: "warm", count: 200, mode: { kind: "window", window: CONCURRENCY }, publishInflight: 256, timeoutMs: 120_000, stepsPerFlow: 3 });

  const flows = Math.ceil(ITEMS / 3);
  let lsn = await walLsn();
  const plain = await runPhase(mesh, { label: "baseline", idPrefix: "base", count: flows, mode: { kind: "window", window: Math.max(1, Math.floor(CONCURRENCY / 3)) }, publishInflight: 256, timeoutMs: 30 * 60_000, stepsPerFlow: 3 });
  const plainWal = await walBytesSince(lsn);
  const plainTasks = flows * 3;

  await api.putFlow({ id: "bench-map", steps: [{ id: "each", handler: "echo", map: { items: "{% [1..input.n] %}", concurrency: CONCURRENCY, maxItems: ITEMS }, input: { i: "{% index %}" } }] });
  const rssBefore = await engineRss();
  lsn = await walLsn();
  const started = performance.now();
  const { executionId } = await api.start("bench-map", { input: { n: ITEMS } });
  let rowMax = 0;
  let rssPeak = rssBefore;
  for (;;) {
    const { rows } = await admin.query<{ bytes: number; status: string }>("SELECT pg_column_size(e.*) AS bytes, status FROM executions e WHERE id = $1", [executionId]);
    const row = rows[0];
    if (row && row.status !== "running") {
      if (row.status !== "completed") throw new Error(`the map execution ended ${row.status}`);
      break;
    }
    if (row) rowMax = Math.max(rowMax, row.bytes);
    rssPeak = Math.max(rssPeak, await engineRss());
    if (performance.now() - started > 30 * 60_000) throw new Error("the map did not finish in 30 minutes");
    await sleep(100);
  }
  const mapMs = performance.now() - started;
  const mapWal = await walBytesSince(lsn);
  const rssAfter = await engineRss();
  const view = await api.get(executionId);
  if (!Array.isArray(view.output) || view.output.length !== ITEMS) throw new Error("the map's output is not one entry per item");
  const finalRow = (await admin.query<{ bytes: number }>("SELECT pg_column_size(e.*) AS bytes FROM executions e WHERE id = $1", [executionId])).rows[0]!.bytes;

  const report = {
    params: { items: ITEMS, concurrency: CONCURRENCY },
    baseline: { tasks: plainTasks, tasksPerSec: round(plain.stepsPerSec, 0), walBytesPerTask: Math.round(plainWal / plainTasks) },
    map: {
      items: ITEMS,
      wallMs: Math.round(mapMs),
      itemsPerSec: round((ITEMS / mapMs) * 1000, 0),
      walBytesPerItem: Math.round(mapWal / ITEMS),
      executionRowMaxBytesWhileRunning: rowMax,
      executionRowBytesWithOutput: finalRow,
      engineRssMb: { before: mb(rssBefore), peak: mb(rssPeak), after: mb(rssAfter) },
    },
    ratio: {
      throughput: round((ITEMS / mapMs) * 1000 / plain.stepsPerSec, 2),
      walPerTask: round(mapWal / ITEMS / (plainWal / plainTasks), 2),
    },
  };
  console.log(`baseline: ${plainTasks} tasks as ${flows} three-step flows: ${report.baseline.tasksPerSec} tasks/s, ${report.baseline.walBytesPerTask} WAL bytes/task`);
  console.log(`map: ${ITEMS} items in ${report.map.wallMs} ms: ${report.map.itemsPerSec} items/s, ${report.map.walBytesPerItem} WAL bytes/item`);
  console.log(`map execution row: at most ${rowMax} bytes while running; ${finalRow} bytes with its ${ITEMS}-entry output`);
  console.log(`engine RSS: ${report.map.engineRssMb.before} MB before, ${report.map.engineRssMb.peak} MB peak, ${report.map.engineRssMb.after} MB after`);
  console.log(`ratio map/baseline: throughput ${report.ratio.throughput}, WAL per task ${report.ratio.walPerTask}`);
  const dir = new URL("./results/", import.meta.url);
  await mkdir(dir, { recursive: true });
  await writeFile(new URL(`map-${new Date().toISOString().replace(/[:.]/g, "-")}.json`, dir), `${JSON.stringify(report, null, 2)}\n`);
} finally {
  await rig.close();
}
