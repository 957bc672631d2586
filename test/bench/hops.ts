/**
 * `npm run bench:hops`: where one flow's time goes, hop by hop, with microseconds instead of the
 * database's milliseconds. One engine and one worker (as in `npm run bench`) run three-step echo
 * flows one at a time, paced (BENCH_HOPS_RATE flows/s, default 20: every process idles between
 * flows, as at a light load), BENCH_HOPS_FLOWS of them (200) after a warm-up. A `>` subscriber on
 * the same server stamps each message as it passes — a publish once, its JetStream delivery once
 * more — and groups them by the execution id in their subject or body, so each hop is the gap
 * between two stamps on one clock: the server's forwarding, the engine's decision and commit,
 * the worker's run. Then, at the same pacing, the round trip of a trivial statement and of a
 * one-row INSERT's commit on the bench's PostgreSQL: the floor under each engine hop.
 */
import { performance } from "node:perf_hooks";
import { connect } from "@nats-io/transport-node";
import { runPhase } from "./driver.js";
import { startMeshRig } from "./rig.js";
import { envInt } from "./stats.js";

const rate = envInt("BENCH_HOPS_RATE", 20, 1);
const flows = envInt("BENCH_HOPS_FLOWS", 200, 10);
const STEPS = 3;

interface Stamp {
  t: number;
  subject: string;
}

const hops = new Map<string, number[]>();
const note = (hop: string, ms: number) => {
  const list = hops.get(hop) ?? [];
  list.push(ms);
  hops.set(hop, list);
};
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

/** The execution a message belongs to: the 4th token of fm.exec.<flow>.<id>.…, else the body's executionId. */
function executionOf(subject: string, data: Uint8Array): string | undefined {
  const t = subject.split(".");
  if (t[1] === "exec") return t[3];
  if (t[1] !== "tasks" && t[1] !== "results" && t[1] !== "flows") return undefined;
  try {
    return (JSON.parse(new TextDecoder().decode(data)) as { executionId?: string }).executionId;
  } catch {
    return undefined;
  }
}

/** Notes one flow's hops from its stamps (time order); false when a stamp is missing. */
function noteFlow(stamps: Stamp[], driverStart: number): boolean {
  const of = (prefix: string) => stamps.filter((s) => s.subject.startsWith(prefix)).map((s) => s.t);
  const starts = of("fm.flows.start.");
  const tasks = of("fm.tasks.");
  const results = of("fm.results.");
  // fm.exec.<flow>.<id>.completed, not fm.exec.<flow>.<id>.step.completed
  const completed = stamps.find((s) => /^fm\.exec\.[^.]+\.[^.]+\.completed$/.test(s.subject))?.t;
  if (starts.length < 2 || tasks.length < 2 * STEPS || results.length < 2 * STEPS || completed === undefined) return false;
  note("driver: start publish → stored and delivered to the engine", starts[1]! - driverStart);
  note("engine: start → first task published (one commit)", tasks[0]! - starts[1]!);
  for (let k = 0; k < STEPS; k++) {
    note("server: task published → delivered to the worker", tasks[2 * k + 1]! - tasks[2 * k]!);
    note("worker: task delivered → result published", results[2 * k]! - tasks[2 * k + 1]!);
    note("server: result published → delivered to the engine", results[2 * k + 1]! - results[2 * k]!);
    if (k < STEPS - 1) note("engine: result → next task published (one commit)", tasks[2 * k + 2]! - results[2 * k + 1]!);
  }
  note("engine: last result → completed event (one commit)", completed - results[2 * STEPS - 1]!);
  return true;
}

/** Round trips of `sql` on a fresh connection, one every 1000/rate ms (the processes idle between them as they do between flows). */
async function idleRoundTrips(rig: Awaited<ReturnType<typeof startMeshRig>>, label: string, sql: string): Promise<void> {
  const gap = 1000 / rate;
  for (let i = 0; i < Math.min(flows, 100); i++) {
    await new Promise((resolve) => setTimeout(resolve, gap));
    const t = performance.now();
    await rig.sql.query({ name: label.replace(/\W/g, "_"), text: sql });
    note(label, performance.now() - t);
  }
}

const rig = await startMeshRig("bench-hops");
try {
  const phase = { publishInflight: 16, timeoutMs: 120_000, stepsPerFlow: STEPS };
  await runPhase(rig.mesh, { ...phase, label: "warm-up", idPrefix: "w", count: 100, mode: { kind: "window", window: 1 } });

  const census = await connect({ servers: rig.nats.url, name: "bench-hops-census" });
  const byExecution = new Map<string, Stamp[]>();
  // ">" and not "fm.>": a pull consumer's delivery goes to its puller's inbox (under the stored subject), which only ">" matches.
  const sub = census.subscribe(">", {
    callback: (_err, msg) => {
      const t = performance.now();
      const id = executionOf(msg.subject, msg.data);
      if (!id) return;
      const stamps = byExecution.get(id) ?? [];
      stamps.push({ t, subject: msg.subject });
      byExecution.set(id, stamps);
    },
  });
  await census.flush();

  const driverStart = new Map<string, number>();
  const mesh = rig.mesh;
  const start = mesh.start.bind(mesh);
  mesh.start = (id: string) => {
    driverStart.set(id, performance.now());
    return start(id);
  };
  const result = await runPhase(mesh, { ...phase, label: "hops", idPrefix: "h", count: flows, mode: { kind: "rate", perSecond: rate, maxInflight: 1_000 } });
  await census.flush();
  sub.unsubscribe();
  await census.close();

  let complete = 0;
  for (const [id, t0] of driverStart) if (noteFlow(byExecution.get(id) ?? [], t0)) complete++;
  await idleRoundTrips(rig, "PostgreSQL at the same pacing: SELECT 1 round trip", "SELECT 1");
  await rig.sql.query("CREATE TABLE bench_hops_probe (id bigserial PRIMARY KEY, body jsonb)");
  await idleRoundTrips(rig, "PostgreSQL at the same pacing: one-row INSERT + commit", "INSERT INTO bench_hops_probe (body) VALUES ('{}')");

  console.log(`\n${complete} of ${flows} flows at ${rate}/s, one at a time; flow p50 ${result.flowLatencyMs?.p50.toFixed(2)} ms, p95 ${result.flowLatencyMs?.p95.toFixed(2)} ms (driver's clock)`);
  console.log(`${"hop".padEnd(62)} ${"p50 ms".padStart(8)} ${"p90 ms".padStart(8)}  per flow`);
  let sum = 0;
  for (const [hop, values] of hops) {
    const perFlow = values.length / (hop.startsWith("PostgreSQL") ? values.length : complete);
    if (!hop.startsWith("PostgreSQL")) sum += percentile(values, 0.5) * perFlow;
    console.log(`${hop.padEnd(62)} ${percentile(values, 0.5).toFixed(3).padStart(8)} ${percentile(values, 0.9).toFixed(3).padStart(8)}  ×${perFlow.toFixed(0)}`);
  }
  console.log(`sum of the hops' p50s × their count per flow: ${sum.toFixed(2)} ms`);
} finally {
  await rig.close();
}
