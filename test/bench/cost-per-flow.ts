/**
 * `npm run bench:cost`: what one three-step flow costs each process of the mesh at a paced rate —
 * CPU milliseconds (from /proc, all threads, kernel time included) and context switches per flow
 * for the engine, the worker, nats-server and the database's PostgreSQL backends, PostgreSQL's
 * WAL bytes per flow, and the share of HOT updates (no index entries written) of executions and tasks. One engine and
 * one worker as in `npm run bench`; each rate of BENCH_COST_RATES (flows/s, "25,250") runs
 * max(500, 4 s worth) flows after a 100-flow warm-up. Where `npm run bench` says how fast, this
 * says where the CPU goes as the load changes (on a small VM a process woken from idle costs far
 * more per message than one kept busy: compare the rates). Last, a census of the messages through
 * nats-server per flow at the first rate (message-census.ts).
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpuPercent, postgresPids, snapshotCpu, type CpuGroups } from "./cpu.js";
import { runPhase } from "./driver.js";
import { startMessageCensus } from "./message-census.js";
import { startMeshRig } from "./rig.js";

const rates = (process.env["BENCH_COST_RATES"] ?? "25,250").split(",").map(Number);
if (rates.some((r) => !Number.isInteger(r) || r < 1)) throw new Error(`BENCH_COST_RATES=${process.env["BENCH_COST_RATES"]}: expected comma-separated integers ≥ 1`);

/** Voluntary and involuntary context switches of every thread of these processes. */
function switches(pids: number[]): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  for (const pid of pids) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone (a PostgreSQL backend that ended)
    }
    for (const task of tasks) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
        voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // A thread that ended meanwhile.
      }
    }
  }
  return { voluntary, involuntary };
}

/** CPU ticks of each thread of a process, by thread name (V8 and libuv threads are named), user and kernel apart. */
function threadTicks(pid: number): Map<string, number> {
  const ticks = new Map<string, number>();
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return ticks;
  }
  for (const task of tasks) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").trim();
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks.set(`${name}:user`, (ticks.get(`${name}:user`) ?? 0) + Number(rest[11]));
      ticks.set(`${name}:kernel`, (ticks.get(`${name}:kernel`) ?? 0) + Number(rest[12]));
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return ticks;
}

const rig = await startMeshRig("bench-cost");
const { nats, db, sql, mesh } = rig;
try {
  const phase = { publishInflight: 256, timeoutMs: 120_000, stepsPerFlow: 3 };
  await runPhase(mesh, { ...phase, label: "warm-up", idPrefix: "w", count: 100, mode: { kind: "window", window: 10 } });
  const groups = async (): Promise<CpuGroups> => ({ engine: [mesh.engine.pid], worker: [mesh.worker.pid], nats: [nats.pid], postgres: await postgresPids(sql, db.name) });
  for (const rate of rates) {
    const count = Math.max(500, rate * 4);
    const start = await groups();
    const before = { cpu: snapshotCpu(start), switches: Object.fromEntries(Object.entries(start).map(([k, pids]) => [k, switches(pids)])) };
    const threadsBefore = { engine: threadTicks(mesh.engine.pid), worker: threadTicks(mesh.worker.pid) };
    const walBefore = (await sql.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn;
    const result = await runPhase(mesh, { ...phase, label: `paced@${rate}`, idPrefix: `p${rate}`, count, mode: { kind: "rate", perSecond: rate, maxInflight: 50_000 } });
    const end = await groups();
    const threadsAfter = { engine: threadTicks(mesh.engine.pid), worker: threadTicks(mesh.worker.pid) };
    const cpu = cpuPercent(before.cpu, snapshotCpu(end));
    // The whole server's WAL: the benchmark's database is the only busy one on a quiet machine.
    const wal = (await sql.query<{ bytes: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS bytes", [walBefore])).rows[0]!.bytes;
    console.log(`${count} flows at ${rate}/s: flow p50 ${result.flowLatencyMs?.p50} ms, p99 ${result.flowLatencyMs?.p99} ms; PostgreSQL WAL ${Math.round(Number(wal) / count)} bytes/flow`);
    for (const name of Object.keys(start)) {
      const now = switches(end[name]!);
      const was = before.switches[name]!;
      const ms = ((cpu[name] ?? 0) / 100) * result.wallMs / count;
      console.log(
        `  ${name.padEnd(9)} ${String(cpu[name] ?? 0).padStart(3)} % of a core = ${ms.toFixed(2)} ms CPU/flow; ` +
          `context switches/flow ${((now.voluntary - was.voluntary) / count).toFixed(1)} voluntary, ${((now.involuntary - was.involuntary) / count).toFixed(1)} involuntary`,
      );
      const threads = name === "engine" || name === "worker" ? { after: threadsAfter[name], before: threadsBefore[name] } : undefined;
      if (!threads) continue;
      // Clock ticks are 10 ms: per flow that is ±(10 ms / count) per thread.
      const perFlow = [...threads.after].map(([thread, t]) => [thread, ((t - (threads.before.get(thread) ?? 0)) * 10) / count] as const).filter(([, ms]) => ms > 0);
      console.log(`            by thread: ${perFlow.sort((a, b) => b[1] - a[1]).map(([thread, ms]) => `${thread} ${ms.toFixed(2)}`).join(", ")} ms/flow`);
    }
  }
  // Last, as it loads the server: what passes through nats-server per flow.
  const censusRate = rates[0]!;
  const census = await startMessageCensus(nats.url);
  const censusCount = Math.max(300, censusRate * 2);
  await runPhase(mesh, { ...phase, label: `census@${censusRate}`, idPrefix: `c${censusRate}`, count: censusCount, mode: { kind: "rate", perSecond: censusRate, maxInflight: 50_000 } });
  const kinds = [...(await census.stop())].sort((a, b) => b[1].count - a[1].count);
  const total = kinds.reduce((n, [, k]) => n + k.count, 0);
  console.log(`messages through nats-server per flow at ${censusRate}/s (as a \`>\` subscriber sees them): ${(total / censusCount).toFixed(1)}`);
  for (const [kind, { count, bytes }] of kinds) {
    if (count / censusCount < 0.05) continue;
    console.log(`  ${kind.padEnd(58)} ${(count / censusCount).toFixed(2).padStart(6)}/flow, ${Math.round(bytes / count)} B each`);
  }
  // HOT updates rewrite no index entry; an update that changes an indexed column (or finds no room on its page) writes one per index.
  // Backends report their counts at most once a second: the last second's updates may be missing (a ratio, not a tally).
  const { rows: hot } = await sql.query<{ relname: string; upd: string; hot: string }>(
    `SELECT relname, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname IN ('executions', 'tasks') ORDER BY relname`,
  );
  console.log(`HOT updates since the start: ${hot.map((r) => `${r.relname} ${r.hot}/${r.upd} (${Math.round((100 * Number(r.hot)) / Math.max(1, Number(r.upd)))} %)`).join(", ")}`);
} finally {
  await rig.close();
}
