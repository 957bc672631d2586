/**
 * `npm run bench:hops`: where one flow's time goes, hop by hop, with microseconds instead of the
 * database's milliseconds. One engine and one worker (as in `npm run bench`) run three-step echo
 * flows one at a time, paced (BENCH_HOPS_RATE flows/s, default 20: every process idles between
 * flows, as at a light load), BENCH_HOPS_FLOWS of them (200) after a warm-up. A `>` subscriber on
 * the same server stamps each message as it passes — a publish once, its JetStream delivery once
 * more — and groups them by the execution id in their subject or body, so each hop is the gap
 * between two stamps on one clock: the server's forwarding, the engine's decision and commit,
 * the worker's run. Then the raw JetStream ceiling (the same task/result round trips with no
 * engine and no database, ceiling.ts) the same way, on the same server while the mesh idles, and
 * at the same pacing the round trip of a trivial statement and of a one-row INSERT's commit on
 * the bench's PostgreSQL: the floor under each engine hop.
 */
import { performance } from "node:perf_hooks";
import { connect } from "@nats-io/transport-node";
import { startCeiling, STEPS as CEILING_STEPS } from "./ceiling.js";
import { runPhase, type FlowSystem } from "./driver.js";
import { startMeshRig } from "./rig.js";
import { envInt, summarize } from "./stats.js";

const rate = envInt("BENCH_HOPS_RATE", 20, 1);
const flows = envInt("BENCH_HOPS_FLOWS", 200, 10);
const STEPS = 3;
const PHASE = { publishInflight: 16, timeoutMs: 120_000, stepsPerFlow: STEPS };

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

/** The execution a message belongs to: the 4th token of fm.exec.<flow>.<id>.…, else the body's executionId. */
function executionOf(subject: string, data: Uint8Array): string | undefined {
  const t = subject.split(".");
  if (t[0] === "fm" && t[1] === "exec") return t[3];
  if ((t[0] !== "fm" && t[0] !== "bench") || (t[1] !== "tasks" && t[1] !== "results" && t[1] !== "flows")) return undefined;
  try {
    return (JSON.parse(new TextDecoder().decode(data)) as { executionId?: string }).executionId;
  } catch {
    return undefined;
  }
}

/** Times of the stamps whose subject starts with `prefix`, in order. */
const stampsOf = (stamps: Stamp[], prefix: string) => stamps.filter((s) => s.subject.startsWith(prefix)).map((s) => s.t);

/** Whether every step's task and result was seen twice (published, then delivered). */
const complete = (tasks: number[], results: number[], steps: number) => tasks.length >= 2 * steps && results.length >= 2 * steps;

/** Notes the hops of `steps` complete steps; `who` names the parts in the labels. */
function noteSteps(tasks: number[], results: number[], steps: number, who: { prefix: string; collector: string; nextTask: string }): void {
  for (let k = 0; k < steps; k++) {
    note(`${who.prefix}server: task published → delivered to the worker`, tasks[2 * k + 1]! - tasks[2 * k]!);
    note(`${who.prefix}worker: task delivered → result published`, results[2 * k]! - tasks[2 * k + 1]!);
    note(`${who.prefix}server: result published → delivered to the ${who.collector}`, results[2 * k + 1]! - results[2 * k]!);
    if (k < steps - 1) note(who.nextTask, tasks[2 * k + 2]! - results[2 * k + 1]!);
  }
}

/** Notes one mesh flow's hops: its start, its steps, its end (fm.exec.<flow>.<id>.completed, not …step.completed). */
function noteFlow(stamps: Stamp[], driverStart: number): boolean {
  const starts = stampsOf(stamps, "fm.flows.start.");
  const tasks = stampsOf(stamps, "fm.tasks.");
  const results = stampsOf(stamps, "fm.results.");
  const completed = stamps.find((s) => /^fm\.exec\.[^.]+\.[^.]+\.completed$/.test(s.subject))?.t;
  if (starts.length < 2 || completed === undefined || !complete(tasks, results, STEPS)) return false;
  note("driver: start publish → stored and delivered to the engine", starts[1]! - driverStart);
  note("engine: start → first task published (one commit)", tasks[0]! - starts[1]!);
  noteSteps(tasks, results, STEPS, { prefix: "", collector: "engine", nextTask: "engine: result → next task published (one commit)" });
  note("engine: last result → completed event (one commit)", completed - results[2 * STEPS - 1]!);
  return true;
}

/** Notes one ceiling flow's hops: its collector publishes each step's task (the first at the driver's start). */
function noteCeilingFlow(stamps: Stamp[], driverStart: number): boolean {
  const tasks = stampsOf(stamps, "bench.tasks.");
  const results = stampsOf(stamps, "bench.results.");
  if (!complete(tasks, results, CEILING_STEPS)) return false;
  note("ceiling: driver start → first task published", tasks[0]! - driverStart);
  noteSteps(tasks, results, CEILING_STEPS, { prefix: "ceiling ", collector: "collector", nextTask: "ceiling collector: result → next task published (no database)" });
  return true;
}

/** Round trips of `sql` on the bench's own client, one every 1000/rate ms (PostgreSQL idles between them as it does between flows). */
async function idleRoundTrips(rig: Awaited<ReturnType<typeof startMeshRig>>, label: string, sql: string): Promise<void> {
  const gap = 1000 / rate;
  for (let i = 0; i < Math.min(flows, 100); i++) {
    await new Promise((resolve) => setTimeout(resolve, gap));
    const t = performance.now();
    await rig.sql.query({ name: label.replace(/\W/g, "_"), text: sql });
    note(label, performance.now() - t);
  }
}

/**
 * Runs `count` flows one at a time at the pacing and answers each flow's stamps and the driver's
 * start time. ">" and not "fm.>": a pull consumer's delivery goes to its puller's inbox (under
 * the stored subject), which only ">" matches.
 */
async function stampFlows(rig: Awaited<ReturnType<typeof startMeshRig>>, system: FlowSystem, idPrefix: string) {
  const census = await connect({ servers: rig.nats.url, name: "bench-hops-census" });
  const byExecution = new Map<string, Stamp[]>();
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
  const start = system.start.bind(system);
  system.start = (id: string) => {
    driverStart.set(id, performance.now());
    return start(id);
  };
  const result = await runPhase(system, { ...PHASE, label: "hops", idPrefix, count: flows, mode: { kind: "rate", perSecond: rate, maxInflight: 1_000 } });
  system.start = start;
  await census.flush();
  sub.unsubscribe();
  await census.close();
  return { result, byExecution, driverStart };
}

const rig = await startMeshRig("bench-hops");
try {
  const warmUp = { ...PHASE, label: "warm-up", idPrefix: "w", count: 100, mode: { kind: "window", window: 1 } } as const;
  await runPhase(rig.mesh, warmUp);
  const mesh = await stampFlows(rig, rig.mesh, "h");
  let meshFlows = 0;
  for (const [id, t0] of mesh.driverStart) if (noteFlow(mesh.byExecution.get(id) ?? [], t0)) meshFlows++;

  // The ceiling on the same server while the mesh idles (its engine and worker wait on their pulls).
  const ceilingSystem = await startCeiling(rig.nc, rig.nats.url, 256);
  let ceiling: Awaited<ReturnType<typeof stampFlows>>;
  try {
    await runPhase(ceilingSystem, { ...warmUp, idPrefix: "cw" });
    ceiling = await stampFlows(rig, ceilingSystem, "c");
  } finally {
    await ceilingSystem.close();
  }
  let ceilingFlows = 0;
  for (const [id, t0] of ceiling.driverStart) if (noteCeilingFlow(ceiling.byExecution.get(id) ?? [], t0)) ceilingFlows++;

  await idleRoundTrips(rig, "PostgreSQL at the same pacing: SELECT 1 round trip", "SELECT 1");
  await rig.sql.query("CREATE TABLE bench_hops_probe (id bigserial PRIMARY KEY, body jsonb)");
  await idleRoundTrips(rig, "PostgreSQL at the same pacing: one-row INSERT + commit", "INSERT INTO bench_hops_probe (body) VALUES ('{}')");

  const flowP50 = (r: typeof mesh.result) => `${r.flowLatencyMs?.p50.toFixed(2)} ms (p95 ${r.flowLatencyMs?.p95.toFixed(2)})`;
  console.log(`\nflows at ${rate}/s, one at a time (driver's clock): mesh ${meshFlows} of ${flows}, p50 ${flowP50(mesh.result)}; ceiling ${ceilingFlows} of ${flows}, p50 ${flowP50(ceiling.result)}`);
  console.log(`${"hop".padEnd(64)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)}  per flow`);
  const sums = { mesh: 0, ceiling: 0 };
  for (const [hop, values] of hops) {
    const group = hop.startsWith("PostgreSQL") ? undefined : hop.startsWith("ceiling") ? "ceiling" : "mesh";
    const perFlow = group === undefined ? 1 : values.length / (group === "ceiling" ? ceilingFlows : meshFlows);
    const { p50, p95 } = summarize(values)!;
    if (group) sums[group] += p50 * perFlow;
    console.log(`${hop.padEnd(64)} ${p50.toFixed(3).padStart(8)} ${p95.toFixed(3).padStart(8)}  ×${perFlow.toFixed(0)}`);
  }
  console.log(`sum of the hops' p50s × their count per flow: mesh ${sums.mesh.toFixed(2)} ms, ceiling ${sums.ceiling.toFixed(2)} ms`);
} finally {
  await rig.close();
}
