/**
 * `npm run bench:soak`: does a step cost the same after a million executions? One engine and one
 * worker (child processes, as in `npm run bench`) on one store run BENCH_SOAK_EXECUTIONS
 * three-step flows (default 1,000,000) in chunks of BENCH_SOAK_CHUNK (50,000), closed loop
 * (BENCH_SOAK_WINDOW in flight, 500), with retention on (BENCH_SOAK_RETENTION, "60s": the sweep
 * deletes while the load runs, as in production). It prints each chunk's flows/s and p50, the
 * last chunk's throughput over the first's (the bar: ≥ 0.9), and the sizes of the
 * executions, tasks and outbox tables with their indexes at the start and the end.
 */
import { runPhase } from "./driver.js";
import { startMeshRig } from "./rig.js";
import { envInt } from "./stats.js";

const TOTAL = envInt("BENCH_SOAK_EXECUTIONS", 1_000_000, 1);
const CHUNK = Math.min(TOTAL, envInt("BENCH_SOAK_CHUNK", 50_000, 1));
const WINDOW = envInt("BENCH_SOAK_WINDOW", 500, 1);
const RETENTION = process.env["BENCH_SOAK_RETENTION"] ?? "60s";
const log = (msg: string) => process.stderr.write(`[soak] ${msg}\n`);

process.env["BENCH_RETENTION"] = RETENTION;
const rig = await startMeshRig("soak-driver");
const { nats, db, sql: admin, nc, mesh } = rig;

const sizes = async () => {
  const { rows } = await admin.query<{ relname: string; table_mb: string; indexes_mb: string; rows: string }>(
    `SELECT c.relname, round(pg_table_size(c.oid) / 1048576.0, 1) AS table_mb, round(pg_indexes_size(c.oid) / 1048576.0, 1) AS indexes_mb,
            (SELECT n_live_tup FROM pg_stat_user_tables s WHERE s.relid = c.oid) AS rows
       FROM pg_class c WHERE c.relname IN ('executions', 'tasks', 'outbox') ORDER BY c.relname`,
  );
  return rows.map((r) => `${r.relname} ${r.table_mb} MB + indexes ${r.indexes_mb} MB (${r.rows} live rows)`).join("; ");
};

const chunks: Array<{ flowsPerSec: number; p50: number | undefined }> = [];
try {
  log(`${TOTAL} executions in chunks of ${CHUNK}, window ${WINDOW}, retention ${RETENTION}; nats-server ${nats.url}, database ${db.name}`);
  const before = await sizes();
  log(`sizes at the start: ${before}`);
  for (let done = 0, i = 0; done < TOTAL; i++) {
    const count = Math.min(CHUNK, TOTAL - done);
    const r = await runPhase(mesh, { label: `soak chunk ${i}`, idPrefix: `soak${i}`, count, mode: { kind: "window", window: WINDOW }, publishInflight: 256, timeoutMs: 30 * 60_000, stepsPerFlow: 3 });
    done += count;
    chunks.push({ flowsPerSec: r.flowsPerSec, p50: r.flowLatencyMs?.p50 });
    log(`chunk ${i}: ${count} flows, ${r.flowsPerSec.toFixed(0)} flows/s, p50 ${r.flowLatencyMs?.p50} ms (${done}/${TOTAL})`);
  }
  const after = await sizes();
  const first = chunks[0]!;
  const last = chunks.at(-1)!;
  console.log("");
  console.log(`soak: ${TOTAL} three-step executions into one store, chunks of ${CHUNK}, window ${WINDOW}, retention ${RETENTION}`);
  console.log(`  first chunk: ${first.flowsPerSec.toFixed(0)} flows/s, p50 ${first.p50} ms`);
  console.log(`  last chunk:  ${last.flowsPerSec.toFixed(0)} flows/s, p50 ${last.p50} ms`);
  console.log(`  last/first throughput: ${(last.flowsPerSec / first.flowsPerSec).toFixed(3)} (bar: >= 0.9)`);
  console.log(`  sizes at the start: ${before}`);
  console.log(`  sizes at the end:   ${after}`);
} finally {
  await rig.close();
}
