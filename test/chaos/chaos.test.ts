/**
 * "Nothing is lost" under sustained chaos (`npm run test:chaos`, a few minutes).
 *
 * 500 executions of four flows (delay/echo steps that complete, a non-retryable failure, a
 * retryable failure with maxAttempts 3, a fan-out/fan-in DAG) are started over about a minute
 * while a driver, one action at a time on a seeded random schedule:
 *   - SIGKILLs a random worker process (only while at least two are alive) and starts a replacement,
 *   - SIGKILLs the engine process and starts a new one,
 *   - restarts nats-server (same port and store), by SIGTERM or by SIGKILL.
 * Afterwards every execution must be terminal with the status and output its flow implies, and
 * every step's result must have been applied exactly once:
 *   - tasks table: one row per (execution, step, attempt); a completed step has exactly one
 *     completed attempt (the last); worker deaths never burn attempts (JetStream redelivers the
 *     same attempt); a retried step has exactly its maxAttempts failed attempts;
 *   - exec events (seen by a subscriber that reconnects): never two different `step.completed`
 *     for one step nor two different `completed`/`failed` for one execution;
 *   - side effects, counted in a table the test's own `charge` handler writes (keyed by task
 *     and attempt, as a handler author should): every `ok` execution charged exactly once;
 *   - the dead letters are exactly the tasks designed to die;
 *   - nothing is left in the task and result work queues.
 * Recovery times per disruption are printed. FM_CHAOS_SEED=<n> replays a schedule's choices.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient, createNames, encode } from "@flowmonkey/shared";
import { canonical, connectReconnecting, ExecEventRecorder, openPool, ProgressRecorder, seededRandom, stats } from "./support/observe.js";
import { useMeshProcesses, type MeshProcess, type MeshProcesses } from "./support/processes.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const EXECUTIONS = 500;
const HEARTBEAT_TIMEOUT_MS = 2000;
const WORKERS = 3;
const START_WINDOW_MS = 60_000;
/** Disruptions go on this long after the first start. */
const CHAOS_MS = 75_000;
const SEED = Number(process.env["FM_CHAOS_SEED"] ?? Date.now() % 1_000_000);

/** Workers with the built-ins and the `charge` side-effect handler (support/effects-worker.ts). */
const EFFECTS_WORKER = {
  script: fileURLToPath(new URL("./support/effects-worker.ts", import.meta.url)),
  handlers: ["echo", "delay", "fail", "charge"],
};
const nats = useNatsServer();
const database = useTestDatabase();
const meshProcesses = useMeshProcesses();
const prefix = uniquePrefix();
const names = createNames(prefix);

type Kind = "ok" | "boom" | "flaky" | "fanout";

const FLOWS = [
  {
    id: "ok",
    steps: [
      { id: "s1", handler: "echo", input: { i: "{% input.i %}" } },
      { id: "s2", handler: "delay", input: { ms: "{% input.ms %}" }, retry: { maxAttempts: 3, backoff: "fixed", initialDelayMs: 200, jitter: false } },
      { id: "s3", handler: "echo", input: { i: "{% steps.s1.i %}", waited: "{% steps.s2.waitedMs >= input.ms %}" } },
      // A real side effect, written by the test's own handler into chaos_effects.
      { id: "s4", handler: "charge", input: { amount: "{% input.i %}" } },
    ],
    output: "{% steps.s3 %}",
  },
  {
    id: "boom",
    steps: [
      { id: "s1", handler: "echo", input: { i: "{% input.i %}" } },
      {
        id: "s2",
        handler: "fail",
        // Non-retryable: a retry policy must not make it run again.
        input: { code: "CARD_DECLINED", message: "{% 'declined #' & input.i %}", retryable: false },
        retry: { maxAttempts: 3, backoff: "fixed", initialDelayMs: 200, jitter: false },
      },
      { id: "s3", handler: "echo", input: { never: true } },
    ],
  },
  {
    id: "flaky",
    steps: [
      { id: "s1", handler: "delay", input: { ms: "{% input.ms %}" } },
      {
        id: "s2",
        handler: "fail",
        input: { code: "UPSTREAM_DOWN", message: "try later", retryable: true },
        retry: { maxAttempts: 3, backoff: "fixed", initialDelayMs: 300, jitter: false },
      },
    ],
  },
  {
    id: "fanout",
    steps: [
      { id: "a", handler: "echo", input: { i: "{% input.i %}" } },
      { id: "b", handler: "delay", dependsOn: ["a"], input: { ms: "{% input.ms %}" } },
      { id: "c", handler: "delay", dependsOn: ["a"], input: { ms: 400 }, retry: { maxAttempts: 3, backoff: "fixed", initialDelayMs: 200, jitter: false } },
      { id: "d", handler: "echo", dependsOn: ["b", "c"], input: { i: "{% steps.a.i %}", both: "{% steps.b.waitedMs >= input.ms and steps.c.waitedMs >= 400 %}" } },
    ],
    output: "{% steps.d %}",
  },
];

/** Execution `i`: its id, flow and input — a fixed function of i. */
function plan(i: number): { id: string; kind: Kind; input: { i: number; ms: number } } {
  const kinds: Kind[] = ["ok", "ok", "fanout", "ok", "boom", "fanout", "ok", "flaky", "ok", "fanout"];
  const kind = kinds[i % kinds.length]!;
  return { id: `x-${String(i).padStart(4, "0")}`, kind, input: { i, ms: 100 + ((i * 137) % 900) } };
}

interface Disruption {
  kind: "worker" | "engine" | "nats-term" | "nats-kill";
  at: number;
  /** Executions not terminal when it happened. */
  inFlight: string[];
  target?: string;
  /** How long the replacement took to be ready. */
  readyMs?: number;
}

let mesh: MeshProcesses;
let db: ReturnType<typeof openPool>;
let nc: Awaited<ReturnType<typeof connectReconnecting>>;
let events: ExecEventRecorder;
let progress: ProgressRecorder;
const killedByUs = new Set<MeshProcess>();

beforeAll(async () => {
  mesh = meshProcesses({
    natsUrl: nats.url,
    databaseUrl: database.url,
    prefix,
    heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
    // debug: workers log every task they finish with its JetStream delivery count.
    logLevel: "debug",
    env: { CHAOS_EFFECTS_DATABASE_URL: database.url },
  });
  db = openPool(database.url);
  nc = await connectReconnecting(nats.url);
  events = new ExecEventRecorder(nc, names);
  progress = new ProgressRecorder(nc, names);
  await db.query("CREATE TABLE chaos_effects (task_id text, attempt int, amount numeric, runs int NOT NULL DEFAULT 1, PRIMARY KEY (task_id, attempt))");
  await mesh.startEngine();
  for (let w = 0; w < WORKERS; w++) await mesh.startWorker(EFFECTS_WORKER);
  const api = createApiClient(nc, { prefix });
  for (const flow of FLOWS) await api.putFlow(flow);
});

afterAll(async () => {
  await events?.stop();
  await progress?.stop();
  await nc?.close();
  await db?.end();
});

async function nonTerminal(): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>("SELECT id FROM executions WHERE status NOT IN ('completed', 'failed', 'cancelled')");
  return rows.map((r) => r.id);
}

/** Publishes every start into FM_FLOWS, spread over the window; each publish is retried until JetStream acks it. */
async function startAll(): Promise<void> {
  const js = jetstream(nc);
  const t0 = Date.now();
  const publishes: Array<Promise<unknown>> = [];
  for (let i = 0; i < EXECUTIONS; i++) {
    const due = t0 + (i * START_WINDOW_MS) / EXECUTIONS;
    if (due > Date.now()) await sleep(due - Date.now());
    const p = plan(i);
    // Not awaited one by one: a start waiting out a nats restart must not hold back the schedule.
    publishes.push(waitFor(() => js.publish(names.subjects.flowStart(p.kind), encode({ executionId: p.id, input: p.input }), { msgID: p.id }).then(() => true), {
      timeoutMs: 60_000,
      intervalMs: 200,
      message: `start ${p.id} stored`,
    }).catch((err: unknown) => startFailures.push(`${p.id}: ${(err as Error).message}`)));
  }
  await Promise.all(publishes);
}
const startFailures: string[] = [];

/** The kill schedule: one disruption at a time, every 1.5–3.5 s, until the deadline. */
async function runChaos(until: number, random: () => number, log: Disruption[]): Promise<void> {
  let natsRestarts = 0;
  while (Date.now() < until) {
    await sleep(1500 + random() * 2000);
    const roll = random();
    const inFlight = await nonTerminal();
    const at = Date.now();
    if (roll < 0.65) {
      const alive = mesh.workers;
      if (alive.length < 2) {
        await mesh.startWorker(EFFECTS_WORKER);
        continue;
      }
      const victim = alive[Math.floor(random() * alive.length)]!;
      killedByUs.add(victim);
      await victim.kill("SIGKILL");
      const replacement = await mesh.startWorker(EFFECTS_WORKER);
      log.push({ kind: "worker", at, inFlight, target: victim.name, readyMs: replacement.readyAt! - at });
    } else if (roll < 0.85) {
      const engine = mesh.engines[0];
      if (!engine) throw new Error(`no engine process alive at ${at}: ${mesh.all.map((p) => `${p.name} ${JSON.stringify(p.exitInfo)}`).join(", ")}`);
      killedByUs.add(engine);
      await engine.kill("SIGKILL");
      const replacement = await mesh.startEngine();
      log.push({ kind: "engine", at, inFlight, target: engine.name, readyMs: replacement.readyAt! - at });
    } else {
      const hard = natsRestarts++ % 2 === 1;
      if (hard) {
        nats.server.kill("SIGKILL");
        await nats.server.waitForExit();
      }
      await nats.server.restart();
      log.push({ kind: hard ? "nats-kill" : "nats-term", at, inFlight, readyMs: Date.now() - at });
    }
  }
}

describe("chaos: workers, the engine and nats-server killed at random while 500 executions run", () => {
  it("finishes every execution with the expected outcome, each step's result applied exactly once", async () => {
    const random = seededRandom(SEED);
    const disruptions: Disruption[] = [];
    const t0 = Date.now();
    console.log(`[chaos] seed ${SEED} (FM_CHAOS_SEED=${SEED} replays the schedule's choices)`);

    const starting = startAll();
    await runChaos(t0 + CHAOS_MS, random, disruptions);
    await starting;
    const chaosEnded = Date.now();

    // Everything started and terminal (the last disruption may leave up to ~30 s of redeliveries).
    expect(startFailures).toEqual([]);
    await waitFor(
      async () => {
        const { rows } = await db.query<{ total: number; open: number }>(
          "SELECT count(*)::int AS total, count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled'))::int AS open FROM executions",
        );
        return rows[0]!.total === EXECUTIONS && rows[0]!.open === 0;
      },
      { timeoutMs: 150_000, intervalMs: 250, message: `all ${EXECUTIONS} executions terminal` },
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await diagnose()}`, { cause: err });
    });
    const allTerminal = Date.now();

    // 1. Each execution: the status, output/error and step states its flow implies.
    const { rows: executions } = await db.query<{
      id: string;
      flow_id: string;
      status: string;
      output: unknown;
      error: { code: string; message: string } | null;
      steps: Record<string, { status: string; attempts: number }>;
      created_at: Date;
      completed_at: Date;
    }>("SELECT id, flow_id, status, output, error, steps, created_at, completed_at FROM executions ORDER BY id");
    await report({ t0, chaosEnded, allTerminal, disruptions, executions });
    expect(executions.map((e) => e.id)).toEqual(Array.from({ length: EXECUTIONS }, (_, i) => plan(i).id));
    const mismatches: unknown[] = [];
    for (const [i, e] of executions.entries()) {
      const p = plan(i);
      const steps = Object.fromEntries(Object.entries(e.steps).map(([id, s]) => [id, `${s.status}/${s.attempts}`]));
      const actual = { flow: e.flow_id, status: e.status, output: e.output, error: e.error ? { code: e.error.code, message: e.error.message } : null, steps };
      const expected = {
        ok: {
          flow: "ok",
          status: "completed",
          output: { i, waited: true },
          error: null,
          steps: { s1: "completed/1", s2: "completed/1", s3: "completed/1", s4: "completed/1" },
        },
        boom: {
          flow: "boom",
          status: "failed",
          output: null,
          error: { code: "CARD_DECLINED", message: `declined #${i}` },
          steps: { s1: "completed/1", s2: "failed/1", s3: "cancelled/0" },
        },
        flaky: { flow: "flaky", status: "failed", output: null, error: { code: "UPSTREAM_DOWN", message: "try later" }, steps: { s1: "completed/1", s2: "failed/3" } },
        fanout: {
          flow: "fanout",
          status: "completed",
          output: { i, both: true },
          error: null,
          steps: { a: "completed/1", b: "completed/1", c: "completed/1", d: "completed/1" },
        },
      }[p.kind];
      if (canonical(actual) !== canonical(expected)) mismatches.push({ id: e.id, expected, actual });
    }
    expect(mismatches).toEqual([]);

    // 2. The tasks table: every attempt once; every result applied once.
    const { rows: duplicatedAttempts } = await db.query(
      "SELECT execution_id, step_id, attempt, count(*)::int AS n FROM tasks GROUP BY 1, 2, 3 HAVING count(*) > 1",
    );
    expect(duplicatedAttempts).toEqual([]);
    const { rows: perStep } = await db.query<{ execution_id: string; step_id: string; attempts: number[]; statuses: string[] }>(
      `SELECT execution_id, step_id, array_agg(attempt ORDER BY attempt) AS attempts, array_agg(status ORDER BY attempt) AS statuses
         FROM tasks GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    const wrongAttempts: unknown[] = [];
    const byExecution = new Map(executions.map((e) => [e.id, e]));
    for (const t of perStep) {
      const step = byExecution.get(t.execution_id)!.steps[t.step_id]!;
      const expectedAttempts = Array.from({ length: step.attempts }, (_, k) => k + 1);
      const expectedStatuses =
        step.status === "completed" ? [...expectedAttempts.slice(1).map(() => "failed"), "completed"] : expectedAttempts.map(() => "failed");
      if (JSON.stringify(t.attempts) !== JSON.stringify(expectedAttempts) || JSON.stringify(t.statuses) !== JSON.stringify(expectedStatuses)) {
        wrongAttempts.push({ ...t, step });
      }
    }
    expect(wrongAttempts).toEqual([]);
    const dispatchedSteps = executions.reduce((n, e) => n + Object.values(e.steps).filter((s) => s.attempts > 0).length, 0);
    expect(perStep.length).toBe(dispatchedSteps);

    // 2b. The dead letters are exactly the tasks designed to die: each flaky execution's retried
    // step, after its 3 attempts; nothing else (no worker death ran a task out of deliveries).
    const dead = await db.query<{ id: string; reason: string }>("SELECT id, reason FROM dead_tasks ORDER BY id");
    const designedToDie = executions.filter((e) => e.flow_id === "flaky").map((e) => `${e.id}/s2:3`).sort();
    expect(dead.rows).toEqual(designedToDie.map((id) => ({ id, reason: "attempts_exhausted" })));

    // 2c. Side effects, counted where the test's handler wrote them: every `ok` execution charged
    // exactly once, for the attempt the engine applied, though a killed worker's task may have
    // run its handler again on the next worker (runs > 1).
    const { rows: charges } = await db.query<{ task_id: string; attempt: number; amount: string; runs: number }>(
      "SELECT task_id, attempt, amount, runs FROM chaos_effects ORDER BY task_id",
    );
    const okIds = executions.filter((e) => e.flow_id === "ok").map((e) => e.id);
    expect(charges.map((c) => [c.task_id, c.attempt, Number(c.amount)])).toEqual(okIds.map((id) => [`${id}/s4`, 1, Number(id.slice(2))]));
    console.log(
      `[chaos] side effects: ${charges.length} charges for ${okIds.length} executions, none twice; ` +
        `${charges.filter((c) => c.runs > 1).length} ran their handler more than once (a worker died after charging) and found the charge done`,
    );

    // 3. Events: a result applied twice would make a second, different event.
    expect(events.duplicates("step.completed", { distinct: true })).toEqual([]);
    expect(events.duplicates("completed", { distinct: true })).toEqual([]);
    expect(events.duplicates("failed", { distinct: true })).toEqual([]);

    // 4. Nothing deliverable is left behind: the task pools and the engine's result consumer have
    //    nothing pending or unacknowledged. Task messages still stored in the work queue are listed:
    //    each must belong to an attempt that was settled long ago (a stale copy, see below).
    // The last disruption may have been a nats-server restart moments ago: every JetStream request
    // here is retried until it answers (a request timing out during recovery is not a finding).
    await waitFor(
      async () => {
        const jsm = await jetstreamManager(nc);
        for (const stream of [names.streams.tasks, names.streams.results]) {
          for await (const c of jsm.consumers.list(stream)) if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
        }
        return true;
      },
      { timeoutMs: 45_000, intervalMs: 250, message: "task and result consumers with nothing pending" },
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await diagnose()}`, { cause: err });
    });
    const stored = (stream: string) => waitFor(() => storedMessages(stream), { timeoutMs: 30_000, intervalMs: 500, message: `the messages stored in ${stream}` });
    const leftovers = await stored(names.streams.tasks);
    const { rows: settled } = await db.query<{ key: string }>("SELECT task_id || ':' || attempt AS key FROM tasks WHERE status <> 'dispatched'");
    const settledKeys = new Set(settled.map((r) => r.key));
    const unsettled = leftovers.filter((m) => !settledKeys.has(`${m.body.taskId}:${m.body.attempt}`));
    expect(unsettled).toEqual([]);
    const results = await stored(names.streams.results);
    console.log(
      `[chaos] messages still stored after the run (stale copies of settled work; never delivered): ${leftovers.length} tasks, ${results.length} results` +
        (leftovers.length ? `, stored at ${[...new Set(leftovers.map((m) => `${((m.time - t0) / 1000).toFixed(1)}s`))].join(" ")}` : ""),
    );

    // 5. Only the processes we killed died.
    const crashed = mesh.all.filter((p) => !p.alive && !killedByUs.has(p)).map((p) => `${p.name}: ${JSON.stringify(p.exitInfo)}\n${p.tail(20)}`);
    expect(crashed).toEqual([]);
    const engineErrors = mesh.all.filter((p) => p.kind === "engine").flatMap((p) => p.lines.filter((l) => (l.level ?? 0) >= 50));
    expect(engineErrors).toEqual([]);
  });
});

/** Every message stored in a stream, with its body and store time. */
async function storedMessages(stream: string): Promise<Array<{ seq: number; time: number; subject: string; body: { taskId?: string; attempt?: number } }>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: Array<{ seq: number; time: number; subject: string; body: { taskId?: string; attempt?: number } }> = [];
  if (info.state.messages === 0) return out;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (m) out.push({ seq, time: m.time.getTime(), subject: m.subject, body: m.json() });
  }
  return out;
}

/** Why executions are not finishing: open executions, their steps, the queues and consumers. */
async function diagnose(): Promise<string> {
  const lines: string[] = [];
  try {
    const { rows } = await db.query<{ id: string; status: string; steps: unknown }>(
      "SELECT id, status, steps FROM executions WHERE status NOT IN ('completed', 'failed', 'cancelled') ORDER BY id LIMIT 10",
    );
    lines.push(`open executions (first 10): ${JSON.stringify(rows)}`);
    const jsm = await jetstreamManager(nc);
    for (const stream of [names.streams.flows, names.streams.tasks, names.streams.results]) {
      const info = await jsm.streams.info(stream);
      lines.push(`${stream}: ${info.state.messages} messages`);
      for await (const c of jsm.consumers.list(stream)) {
        lines.push(
          `  ${c.name}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, waiting ${c.num_waiting}, max_deliver ${c.config.max_deliver}`,
        );
      }
      if (stream === names.streams.tasks && info.state.messages > 0) {
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && lines.length < 40; seq++) {
          const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
          if (m) lines.push(`  parked task seq ${seq}: ${m.subject} ${m.string().slice(0, 160)}`);
        }
      }
    }
  } catch (err) {
    lines.push(`(diagnosis failed: ${(err as Error).message})`);
  }
  return lines.join("\n");
}

async function report(r: {
  t0: number;
  chaosEnded: number;
  allTerminal: number;
  disruptions: Disruption[];
  executions: Array<{ id: string; completed_at: Date }>;
}): Promise<void> {
  const completedAt = new Map(r.executions.map((e) => [e.id, new Date(e.completed_at).getTime()]));
  const rel = (t: number) => `${((t - r.t0) / 1000).toFixed(1)}s`;
  const drainOf = (d: Disruption) => Math.max(0, ...d.inFlight.map((id) => (completedAt.get(id) ?? r.allTerminal) - d.at));

  // Delay tasks interrupted by a disruption: progress was seen from a run that is not the one whose
  // result was applied (that run started later). The disruption is the first one after the last
  // progress of the lost run; its recovery is that moment → the applied run's completion.
  const { rows: delays } = await db.query<{ task_id: string; attempt: number; started_at: Date; completed_at: Date }>(
    "SELECT task_id, attempt, started_at, completed_at FROM tasks WHERE handler = 'delay' AND status = 'completed'",
  );
  const interrupted = new Map<Disruption, number[]>();
  let unattributed = 0;
  for (const t of delays) {
    const started = new Date(t.started_at).getTime();
    const earlier = progress.of(t.task_id, t.attempt).filter((p) => p.at < started - 100);
    if (earlier.length === 0) continue;
    const lastSeen = earlier[earlier.length - 1]!.at;
    const cause = r.disruptions.find((d) => d.at >= lastSeen - 100 && d.at <= started);
    if (!cause) {
      unattributed++;
      continue;
    }
    let list = interrupted.get(cause);
    if (!list) interrupted.set(cause, (list = []));
    list.push(new Date(t.completed_at).getTime() - cause.at);
  }

  // JetStream delivery counts of finished tasks (the workers' debug "task done" lines).
  const deliveries = new Map<number, number>();
  for (const p of mesh.all.filter((x) => x.kind === "worker")) {
    for (const l of p.lines) if (l.msg === "task done" && typeof l["deliveryCount"] === "number") deliveries.set(l["deliveryCount"], (deliveries.get(l["deliveryCount"]) ?? 0) + 1);
  }

  const lines: string[] = [];
  lines.push(
    `[chaos] ${EXECUTIONS} executions; disruptions for ${((r.chaosEnded - r.t0) / 1000).toFixed(1)} s; all terminal ${((r.allTerminal - r.t0) / 1000).toFixed(1)} s ` +
      `after the first start (${((r.allTerminal - r.chaosEnded) / 1000).toFixed(1)} s after the last disruption)`,
  );
  const count = (k: Disruption["kind"]) => r.disruptions.filter((d) => d.kind === k).length;
  lines.push(
    `[chaos] disruptions: ${count("worker")} worker SIGKILLs, ${count("engine")} engine SIGKILLs, ` +
      `${count("nats-term")} nats-server restarts (SIGTERM), ${count("nats-kill")} nats-server SIGKILL+restarts`,
  );
  lines.push("[chaos]     at  what      target     replacement  in flight → all terminal   interrupted delay tasks → completed again");
  for (const d of r.disruptions) {
    const tasks = interrupted.get(d) ?? [];
    lines.push(
      `[chaos] ${rel(d.at).padStart(6)}  ${d.kind.padEnd(9)} ${(d.target ?? "").padEnd(10)} ${String(d.readyMs).padStart(6)} ms  ` +
        `${String(d.inFlight.length).padStart(4)} → ${String(drainOf(d)).padStart(6)} ms   ` +
        (tasks.length ? `${tasks.length} → max ${Math.max(...tasks)} ms` : "-"),
    );
  }
  for (const k of ["worker", "engine", "nats-term", "nats-kill"] as const) {
    const ds = r.disruptions.filter((d) => d.kind === k);
    if (ds.length === 0) continue;
    lines.push(
      `[chaos] ${k}: in-flight executions all terminal after ${JSON.stringify(stats(ds.map(drainOf)))} ms; ` +
        `interrupted delay tasks completed again after ${JSON.stringify(stats(ds.flatMap((d) => interrupted.get(d) ?? [])))} ms`,
    );
  }
  lines.push(`[chaos] interrupted delay tasks not attributable to one disruption: ${unattributed}`);
  lines.push(`[chaos] delivery counts of finished tasks: ${JSON.stringify(Object.fromEntries([...deliveries].sort(([a], [b]) => a - b)))}`);
  lines.push(`[chaos] exec events received twice (re-sent outbox rows, at-least-once): ${events.republished()}`);
  console.log(lines.join("\n"));
}
