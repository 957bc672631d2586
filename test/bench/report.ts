/** The benchmark's stdout table and its JSON file under test/bench/results/. */
import { mkdir, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { PhaseResult } from "./driver.js";
import { formatContextSizes, type ContextSizesReport } from "./context-sizes.js";
import { formatPlumbing, type PlumbingReport } from "./plumbing.js";
import { formatResilience, type ResilienceReport } from "./resilience.js";
import { round, type LatencySummary } from "./stats.js";

export type Measured = LatencySummary | { na: string };

export interface PhaseReport extends Omit<PhaseResult, "ids"> {
  dispatchToHandlerStartMs: Measured;
  /** The mesh's hops (engine and worker clocks from its tables): start → first dispatch, dispatch → handler, handler, result → next dispatch, last result → end. */
  hopsMs?: Record<string, Measured> | { na: string };
  /** % of one core per component over the phase (200 = two full cores). */
  cpuPercent: Record<string, number>;
}

export interface SystemReport {
  throughput: PhaseReport;
  /** One open-loop phase per BENCH_RATES entry. */
  paced: PhaseReport[];
}

export interface Ratio {
  flowsPerSec: number | null;
  flowP50: number | null;
}

export interface BenchReport {
  timestamp: string;
  parameters: Record<string, unknown>;
  machine: Record<string, unknown>;
  ceiling: SystemReport;
  mesh: SystemReport;
  /** Other systems driven through the same phases in the same run (BullMQ on Redis), or why not. */
  peers: Record<string, SystemReport | { skipped: string }>;
  /** mesh / ceiling: flows/s (higher is better, ≤ 1 expected) and flow p50 latency (× slower). */
  ratios: { throughput: Ratio; paced: Ratio[] };
  /** Recovery after a worker SIGKILL, priority behind a backlog, engine replicas; each with its baseline. */
  resilience: ResilienceReport | { skipped: string };
  /** Task message bytes and dispatch latency by context size, inline vs offloaded. */
  contextSizes: ContextSizesReport | { skipped: string };
  /** Parked waits (engine memory, resume latency) and progress updates/s. */
  plumbing: PlumbingReport | { skipped: string };
  memory: Record<string, unknown>;
  bar: { flowsPerSec: number; medianFlowLatencyMs: number; met: boolean; basis: string };
  methodology: string[];
}

const isSummary = (m: Measured | undefined): m is LatencySummary => m !== undefined && !("na" in m);

export function ratio(mesh: PhaseReport, ceiling: PhaseReport): Ratio {
  const mp = mesh.flowLatencyMs?.p50;
  const cp = ceiling.flowLatencyMs?.p50;
  return {
    flowsPerSec: ceiling.flowsPerSec > 0 ? round(mesh.flowsPerSec / ceiling.flowsPerSec) : null,
    flowP50: mp !== undefined && cp !== undefined && cp > 0 ? round(mp / cp, 2) : null,
  };
}

const ms = (v: number | undefined) => (v === undefined ? "n/a" : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const pcts = (s: LatencySummary | undefined) => (s ? `${ms(s.p50)} / ${ms(s.p95)} / ${ms(s.p99)}` : "n/a");
const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s);

function cpuLine(cpu: Record<string, number>): string {
  return Object.entries(cpu)
    .map(([k, v]) => `${k} ${v}%`)
    .join(", ");
}

export function formatReport(r: BenchReport): string {
  const lines: string[] = [];
  const header =
    `${pad("phase", 22)}${pad("system", 9)}${lpad("flows/s", 9)}${lpad("steps/s", 10)}  ` +
    `${pad("flow latency p50/p95/p99 ms", 30)}${pad("dispatch→handler p50/p95/p99 ms", 32)}`;
  lines.push("", header, "-".repeat(header.length));
  const row = (phase: string, system: string, p: PhaseReport) => {
    const d = p.dispatchToHandlerStartMs;
    lines.push(
      `${pad(phase, 22)}${pad(system, 9)}${lpad(p.flowsPerSec.toFixed(0), 9)}${lpad(p.stepsPerSec.toFixed(0), 10)}  ` +
        `${pad(pcts(p.flowLatencyMs), 30)}${pad(isSummary(d) ? pcts(d) : "n/a", 32)}`,
    );
  };
  const ratioLine = (x: Ratio) =>
    lines.push(
      `${pad("", 22)}${pad("ratio", 9)}mesh/ceiling flows/s = ${x.flowsPerSec ?? "n/a"}, ` +
        `flow p50 mesh/ceiling = ${x.flowP50 === null ? "n/a" : `${x.flowP50}×`}`,
    );
  const t = r.ceiling.throughput.mode;
  const tLabel = t.kind === "window" ? `max (window ${t.window})` : "max";
  const peers = Object.entries(r.peers).filter((e): e is [string, SystemReport] => !("skipped" in e[1]));
  const peerLine = (name: string, p: PhaseReport, c: PhaseReport) => {
    const x = ratio(p, c);
    lines.push(`${pad("", 22)}${pad("ratio", 9)}${name}/ceiling flows/s = ${x.flowsPerSec ?? "n/a"}, flow p50 ${name}/ceiling = ${x.flowP50 === null ? "n/a" : `${x.flowP50}×`}`);
  };
  row(tLabel, "ceiling", r.ceiling.throughput);
  row(tLabel, "mesh", r.mesh.throughput);
  ratioLine(r.ratios.throughput);
  for (const [name, rep] of peers) {
    row(tLabel, name, rep.throughput);
    peerLine(name, rep.throughput, r.ceiling.throughput);
  }
  r.ceiling.paced.forEach((c, i) => {
    const m = r.mesh.paced[i];
    const x = r.ratios.paced[i];
    if (!m || !x) return;
    const label = c.mode.kind === "rate" ? `paced @ ${c.mode.perSecond}/s (${c.flows})` : "paced";
    row(label, "ceiling", c);
    row(label, "mesh", m);
    ratioLine(x);
    for (const [name, rep] of peers) {
      const p = rep.paced[i];
      if (!p) continue;
      row(label, name, p);
      peerLine(name, p, c);
    }
  });
  for (const [name, rep] of Object.entries(r.peers)) if ("skipped" in rep) lines.push(`${name}: skipped (${rep.skipped})`);
  lines.push("");
  for (const [sys, rep] of [["ceiling", r.ceiling] as const, ["mesh", r.mesh] as const, ...peers]) {
    for (const [phase, p] of [["max", rep.throughput] as const, ...rep.paced.map((x) => [x.mode.kind === "rate" ? `@${x.mode.perSecond}/s` : "paced", x] as const)]) {
      const extra = p.mode.kind === "rate" ? ` (achieved start rate ${p.startsPerSec.toFixed(0)}/s)` : "";
      // PostgreSQL CPU per step: its share of a core over the phase, spread over the steps run.
      const pg = p.cpuPercent["postgres"];
      const perStep = pg !== undefined && pg > 0 && p.stepsPerSec > 0 ? `; postgres ${((pg / 100) * 1000 / p.stepsPerSec).toFixed(3)} ms CPU/step` : "";
      lines.push(`cpu ${pad(`${sys} ${phase}:`, 18)} ${cpuLine(p.cpuPercent)}${extra}${perStep}`);
    }
  }
  for (const p of [r.mesh.throughput, ...r.mesh.paced]) {
    const hops = p.hopsMs;
    if (!hops) continue;
    if ("na" in hops && typeof hops.na === "string") {
      lines.push(`hops n/a for ${p.label}: ${hops.na}`);
      continue;
    }
    const parts = Object.entries(hops as Record<string, Measured>).map(([hop, m]) => `${hop} ${isSummary(m) ? `${m.p50}/${m.p99}` : "n/a"}`);
    lines.push(`hops p50/p99 ms, ${pad(`${p.label}:`, 20)} ${parts.join(", ")}`);
  }
  for (const [sys, rep] of [
    ["ceiling", r.ceiling],
    ["mesh", r.mesh],
  ] as const) {
    for (const p of [rep.throughput, ...rep.paced]) {
      const d = p.dispatchToHandlerStartMs;
      if (!isSummary(d)) lines.push(`dispatch→handler n/a for ${sys} ${p.label}: ${d.na}`);
    }
  }
  for (const [sys, rep] of [
    ["ceiling", r.ceiling],
    ["mesh", r.mesh],
  ] as const) {
    for (const p of [rep.throughput, ...rep.paced]) {
      const other = p.cpuPercent["other"] ?? 0;
      if (other >= 25) lines.push(`WARNING: processes outside the benchmark used ${other}% CPU during ${sys} ${p.label}; its numbers are skewed by them`);
    }
  }
  const mem = r.memory;
  lines.push(
    `memory: engine RSS ${mem["engineRssBeforeMB"]} MB before warm-up → ${mem["engineRssAfterMB"]} MB after the run; ` +
      `worker RSS ${mem["workerRssAfterMB"]} MB after`,
  );
  lines.push(
    `bar (≥ ${r.bar.flowsPerSec} flows/s with median flow latency < ${r.bar.medianFlowLatencyMs} ms): ${r.bar.met ? "MET" : "NOT met"} — ${r.bar.basis}`,
  );
  if ("skipped" in r.resilience) lines.push("", `Resilience: skipped (${r.resilience.skipped})`);
  else lines.push(...formatResilience(r.resilience));
  if ("skipped" in r.contextSizes) lines.push("", `Context size: skipped (${r.contextSizes.skipped})`);
  else lines.push(...formatContextSizes(r.contextSizes));
  if ("skipped" in r.plumbing) lines.push("", `Plumbing: skipped (${r.plumbing.skipped})`);
  else lines.push(formatPlumbing(r.plumbing));
  lines.push("", "How it is measured:", ...r.methodology.map((m) => `  - ${m}`));
  return lines.join("\n");
}

export async function writeReport(r: BenchReport): Promise<{ file: string; latest: string }> {
  // BENCH_RESULTS_DIR: elsewhere than the committed history (the CI guard's short runs).
  const dir = process.env["BENCH_RESULTS_DIR"] ? `${process.env["BENCH_RESULTS_DIR"].replace(/\/+$/, "")}/` : fileURLToPath(new URL("./results/", import.meta.url));
  await mkdir(dir, { recursive: true });
  const body = `${JSON.stringify(r, null, 2)}\n`;
  const file = `${dir}${r.timestamp.replace(/:/g, "-")}.json`;
  const latest = `${dir}latest.json`;
  await writeFile(file, body);
  await writeFile(latest, body);
  return { file, latest };
}
