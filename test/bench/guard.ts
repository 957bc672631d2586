/**
 * `npm run bench:guard`: the regression guard CI runs (about a minute). A short `npm run bench`
 * (one closed-loop phase and one paced phase at 250 flows/s, nothing else) measures the mesh and
 * the raw JetStream ceiling in the same run; the guard compares their RATIOS — never absolute
 * times — with the committed baseline (test/bench/baseline.json) and fails when
 *   - throughput (mesh/ceiling flows/s in the closed loop) is below half the baseline's, or
 *   - latency (mesh/ceiling flow p50 at 250/s) is more than twice the baseline's.
 * Half and twice: generous, so a noisy machine does not fail it; a real regression (the one
 * issue 20 found halved throughput and tripled latency) does. Updating the baseline is a
 * deliberate commit: `npm run bench:guard -- --record`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { z } from "zod";

const BASELINE = fileURLToPath(new URL("./baseline.json", import.meta.url));
const RUN = fileURLToPath(new URL("./run.ts", import.meta.url));
const Baseline = z.object({ throughputRatio: z.number().positive(), latencyRatio: z.number().positive(), recordedAt: z.string(), note: z.string() });
const Report = z.object({
  timestamp: z.string(),
  ratios: z.object({
    throughput: z.object({ flowsPerSec: z.number().nullable() }),
    paced: z.array(z.object({ flowP50: z.number().nullable() })).min(1),
  }),
});

const SHORT_RUN = {
  BENCH_FLOWS: "1500",
  BENCH_WARMUP: "100",
  BENCH_WINDOW: "1000",
  BENCH_RATES: "250",
  BENCH_RESILIENCE: "0",
  BENCH_CONTEXT: "0",
  BENCH_PLUMBING: "0",
  BENCH_PEERS: "0",
};

const dir = mkdtempSync(join(tmpdir(), "fm-bench-guard-"));
try {
  await promisify(execFile)(process.execPath, ["--import", "tsx", RUN], {
    env: { ...process.env, ...SHORT_RUN, BENCH_RESULTS_DIR: dir },
    maxBuffer: 64 << 20,
    timeout: 600_000,
  });
  const report = Report.parse(JSON.parse(readFileSync(join(dir, "latest.json"), "utf8")));
  const throughput = report.ratios.throughput.flowsPerSec;
  const latency = report.ratios.paced[0]!.flowP50;
  if (throughput === null || latency === null) throw new Error("the short bench measured no ratio");

  if (process.argv.includes("--record")) {
    const note = "npm run bench:guard -- --record; mesh/ceiling ratios of its short run (closed loop; p50 at 250/s)";
    writeFileSync(BASELINE, `${JSON.stringify({ throughputRatio: throughput, latencyRatio: latency, recordedAt: report.timestamp, note }, null, 2)}\n`);
    console.log(`baseline recorded: throughput ratio ${throughput}, latency ratio ${latency}`);
  } else {
    const baseline = Baseline.parse(JSON.parse(readFileSync(BASELINE, "utf8")));
    const throughputFloor = baseline.throughputRatio / 2;
    const latencyCeiling = baseline.latencyRatio * 2;
    console.log("bench guard (mesh / raw JetStream ceiling, same run):");
    console.log(`  throughput ratio ${throughput}  (baseline ${baseline.throughputRatio}, fails below ${throughputFloor.toFixed(3)})`);
    console.log(`  p50 latency ratio at 250/s ${latency}x  (baseline ${baseline.latencyRatio}x, fails above ${latencyCeiling.toFixed(1)}x)`);
    const failures = [
      ...(throughput < throughputFloor ? [`throughput ratio ${throughput} < half the baseline's ${baseline.throughputRatio}`] : []),
      ...(latency > latencyCeiling ? [`latency ratio ${latency}x > twice the baseline's ${baseline.latencyRatio}x`] : []),
    ];
    if (failures.length > 0) {
      console.error(`bench guard FAILED: ${failures.join("; ")}`);
      process.exitCode = 1;
    } else console.log("bench guard: ok");
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
