/**
 * `npm run bench:languages`: the same one-step flow run by a TypeScript, a Python and a Go
 * worker through one mesh, in one run (one nats-server, one PostgreSQL database, the engine in
 * this process). Per language: BENCH_LANG_EXECUTIONS (300) executions of a one-step echo flow,
 * BENCH_LANG_WINDOW (16) in flight, each worker with 16 slots; executions/s, and dispatch →
 * handler start (the engine's dispatch time to the worker's startedAt, from the tasks table)
 * p50/p95, after an unrecorded warm-up round on the TypeScript worker; completion is polled
 * with executions.get every 5 ms (the same for every language). Every worker is a process of
 * its own (the TypeScript one is worker/dist/main.js); each language's ratio to the TypeScript
 * worker's. A language whose toolchain is
 * missing (.cache/py-venv, Go) is reported as not run. Writes test/bench/results/languages-<time>.json.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { createEngine } from "@flowmonkey/engine";
import { createApiClient, silentLogger } from "@flowmonkey/shared";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { createTestDatabase } from "../support/postgres.js";
import { startProcessUntilReady } from "../support/ready-process.js";
import { envInt, round, summarize } from "./stats.js";

const EXECUTIONS = envInt("BENCH_LANG_EXECUTIONS", 300, 1);
const WINDOW = envInt("BENCH_LANG_WINDOW", 16, 1);
const ROOT = resolve(import.meta.dirname, "../..");
const PYTHON = join(ROOT, ".cache/py-venv/bin/python");
const GO = ["/usr/local/go/bin/go", "/usr/bin/go"].find((p) => existsSync(p));
const PREFIX = "fm";
const log = (msg: string) => process.stderr.write(`[languages] ${msg}\n`);

const nats = await startNatsServer();
const db = await createTestDatabase();
const admin = new pg.Client({ connectionString: db.url });
await admin.connect();
const nc = await connect({ servers: nats.url, name: "languages-bench" });
const engine = createEngine({ nc, log: silentLogger(), prefix: PREFIX, databaseUrl: db.url, heartbeatTimeoutMs: 30_000 });
await engine.start();
const api = createApiClient(nc, { prefix: PREFIX });
const dir = await mkdtemp(join(tmpdir(), "fm-lang-bench-"));
const children: ChildProcess[] = [];

async function startProcess(cmd: string, args: string[], env: Record<string, string>): Promise<void> {
  children.push(await startProcessUntilReady(cmd, args, { NATS_URL: nats.url, FM_PREFIX: PREFIX, ...env }));
}

/** Runs the flow EXECUTIONS times, WINDOW in flight; answers executions/s and dispatch → start. */
async function measure(flowId: string, handler: string) {
  await api.putFlow({ id: flowId, steps: [{ id: "s", handler, input: { n: "{% input.n %}" } }] });
  const ids: string[] = [];
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < EXECUTIONS) {
      const n = next++;
      const { executionId } = await api.start(flowId, { input: { n } });
      ids.push(executionId);
      for (;;) {
        const view = await api.get(executionId);
        if (view.status === "completed") break;
        if (view.status === "failed" || view.status === "cancelled") throw new Error(`${flowId} ${executionId} ${view.status}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  const wallMs = performance.now() - started;
  const { rows } = await admin.query<{ ms: number }>(
    "SELECT extract(epoch FROM (started_at - dispatched_at)) * 1000 AS ms FROM tasks WHERE execution_id = ANY($1::text[]) AND status = 'completed'",
    [ids],
  );
  const latency = summarize(rows.map((r) => Number(r.ms)));
  return { executionsPerSec: round((EXECUTIONS / wallMs) * 1000, 0), dispatchToStartMs: latency ? { p50: round(latency.p50, 2), p95: round(latency.p95, 2) } : undefined };
}

const report: Record<string, unknown> = { params: { executions: EXECUTIONS, window: WINDOW } };
try {
  await startProcess(process.execPath, [join(ROOT, "worker/dist/main.js"), "--handlers", "echo", "--concurrency", "16"], { LOG_LEVEL: "info", FM_LOG_PRETTY: "false" });
  // Warm-up, off the record: the engine's caches and pools, so the first language measured is not the cold one.
  await measure("lang-warm-up", "echo");
  report["typescript"] = await measure("lang-ts", "echo");
  if (existsSync(PYTHON)) {
    await writeFile(join(dir, "h.py"), 'from flowmonkey import define_handler\nHANDLERS = [define_handler("py-echo", lambda ctx: ctx.input)]\n');
    await startProcess(PYTHON, ["-m", "flowmonkey", "--module", join(dir, "h.py"), "--concurrency", "16"], { PYTHONPATH: join(ROOT, "sdks/python"), LOG_LEVEL: "WARNING" });
    report["python"] = await measure("lang-py", "py-echo");
  } else report["python"] = "not run: no .cache/py-venv (bash .ci/run system)";
  if (GO) {
    const bin = join(dir, "go-worker");
    await promisify(execFile)(GO, ["build", "-o", bin, "./cmd/flowmonkey-example-worker"], { cwd: join(ROOT, "sdks/go") });
    await startProcess(bin, ["--concurrency", "16"], {});
    report["go"] = await measure("lang-go", "go-echo");
  } else report["go"] = "not run: no Go toolchain";
  const ts = report["typescript"] as { executionsPerSec: number; dispatchToStartMs?: { p50: number } };
  for (const lang of ["typescript", "python", "go"]) {
    const r = report[lang];
    if (typeof r === "string") {
      console.log(`${lang}: ${r}`);
      continue;
    }
    const m = r as { executionsPerSec: number; dispatchToStartMs?: { p50: number; p95: number } };
    const p50Ratio = ts.dispatchToStartMs && m.dispatchToStartMs ? round(m.dispatchToStartMs.p50 / ts.dispatchToStartMs.p50, 2) : "n/a";
    console.log(
      `${lang}: ${m.executionsPerSec} executions/s (${round(m.executionsPerSec / ts.executionsPerSec, 2)}x TypeScript), dispatch -> start p50 ${m.dispatchToStartMs?.p50} ms, p95 ${m.dispatchToStartMs?.p95} ms (p50 ${p50Ratio}x)`,
    );
  }
  const out = new URL("./results/", import.meta.url);
  await mkdir(out, { recursive: true });
  await writeFile(new URL(`languages-${new Date().toISOString().replace(/[:.]/g, "-")}.json`, out), `${JSON.stringify(report, null, 2)}\n`);
} finally {
  for (const child of children) child.kill("SIGTERM");
  await engine.close();
  await nc.close();
  await admin.end();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
  await nats.stop();
  log("done");
}
