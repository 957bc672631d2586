/**
 * `npm run bench:plumbing`: only the plumbing part of the benchmark (waits and progress; see
 * plumbing.ts), on its own nats-server and fresh databases. `npm run bench` runs it too, after
 * the resilience part.
 *
 * Env: BENCH_WAITS (10000), BENCH_RESUME_SAMPLE (2000), BENCH_RESUME_RATE (200/s),
 * BENCH_PROGRESS_TASKS (16), BENCH_PROGRESS_UPDATES (2000 per task), BENCH_PHASE_TIMEOUT_MS (300000).
 */
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { checkPostgres, createTestDatabase } from "../support/postgres.js";
import { children } from "./child-host.js";
import { formatPlumbing, measurePlumbing, plumbingParams } from "./plumbing.js";

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
await checkPostgres();
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url, name: "bench-plumbing" });
try {
  const report = await measurePlumbing({ nc, natsUrl: nats.url, freshDatabase: () => createTestDatabase(), log }, plumbingParams());
  console.log(formatPlumbing(report));
  console.log(JSON.stringify(report, null, 2));
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  for (const child of children) console.error(`\n--- ${child.name} (pid ${child.pid}) log tail ---\n${child.logs(30)}`);
  process.exitCode = 1;
} finally {
  await nc.close();
  await nats.stop();
}
process.exit(process.exitCode ?? 0);
