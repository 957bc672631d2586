/**
 * `npm run test:conformance`: the worker protocol's conformance suite. The same scenarios run
 * against the TypeScript worker (worker/dist/main.js), the Python one (sdks/python) and the Go
 * one (sdks/go), each a process of its own on one real mesh (nats-server, PostgreSQL, engine),
 * one language after another, each language serving the same handler types
 * (test/conformance/*-handlers.*, sdks/go/cmd/flowmonkey-conformance-worker). At the end it
 * prints a scenario × language table. A language whose toolchain is missing (.cache/py-venv
 * from `bash .ci/run system`, Go at /usr/local/go/bin) is skipped with that message.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, listWorkers, Progress, silentLogger, STEP_KEYS, TaskResult, type ExecutionView } from "@flowmonkey/shared";
import { generatePoolKeyPair, toBase64 } from "@flowmonkey/shared/vault";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";
import { startProcessUntilReady } from "../support/ready-process.js";

const ROOT = resolve(import.meta.dirname, "../..");
const PYTHON = process.env["FM_PYTHON"] ?? join(ROOT, ".cache/py-venv/bin/python");
const GO = process.env["FM_GO"] ?? ["/usr/local/go/bin/go", "/usr/bin/go"].find((p) => existsSync(p));
/** The us-east-1 pool's vault key pair: the engine seals for its public key, every worker holds the private one. */
const POOL = generatePoolKeyPair();
const SECRET = "conformance-s3cret-value";
/** Every pool consumer gets this ack_wait (the TypeScript worker, started first, creates them). */
const ACK_WAIT_MS = 2000;

type Language = "typescript" | "python" | "go";
const LANGUAGES: Array<{ lang: Language; missing?: string }> = [
  { lang: "typescript" },
  { lang: "python", ...(existsSync(PYTHON) ? {} : { missing: `no Python venv at ${PYTHON} (bash .ci/run system)` }) },
  { lang: "go", ...(GO ? {} : { missing: "no Go toolchain at /usr/local/go/bin/go (set FM_GO)" }) },
];
for (const { lang, missing } of LANGUAGES) if (missing) console.warn(`[conformance] ${lang} skipped: ${missing}`);

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let dir: string;
let goBinary: string;
const results = new Map<string, Map<Language, "pass" | "FAIL">>();

/** Starts one worker process of `lang` with `slots` slots (`more`: extra environment, e.g. FM_CAPABILITIES, FM_REGION). */
function startWorker(lang: Language, more: Record<string, string> = {}, slots = 4): Promise<ChildProcess> {
  const env = { NATS_URL: nats.url, FM_PREFIX: mesh.prefix, FM_VAULT_PRIVATE_KEY: toBase64(POOL.privateKey), ...more };
  switch (lang) {
    case "typescript":
      return startProcessUntilReady(process.execPath, [join(ROOT, "worker/dist/main.js"), "--handler-modules", join(ROOT, "test/conformance/typescript-handlers.mjs"), "--concurrency", String(slots)], {
        ...env,
        FM_HEARTBEAT_TIMEOUT_MS: String(ACK_WAIT_MS),
        LOG_LEVEL: "info",
        FM_LOG_PRETTY: "false",
      });
    case "python":
      return startProcessUntilReady(PYTHON, ["-m", "flowmonkey", "--module", join(ROOT, "test/conformance/python-handlers.py"), "--concurrency", String(slots)], {
        ...env,
        PYTHONPATH: join(ROOT, "sdks/python"),
        LOG_LEVEL: "WARNING",
      });
    case "go":
      return startProcessUntilReady(goBinary, ["--concurrency", String(slots)], env);
  }
}

function stopped(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill(signal);
  return exit;
}

const workerOf = (view: ExecutionView, stepId: string) => view.steps.find((s) => s.stepId === stepId)?.history?.at(-1)?.workerId ?? "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fm-conformance-"));
  if (GO) {
    goBinary = join(dir, "conformance-worker");
    await promisify(execFile)(GO, ["build", "-o", goBinary, "./cmd/flowmonkey-conformance-worker"], { cwd: join(ROOT, "sdks/go"), timeout: 240_000 });
  }
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [], engine: { vaultKey: randomBytes(32), vaultPoolKeys: { "us-east-1": POOL.publicKey } } });
  await mesh.api.putSecret({ key: "conf-token", value: SECRET });
  // A region of its own, so that only the one-slot worker of the lanes scenario takes these.
  await mesh.putFlow({ id: "c-lane-busy", steps: [{ id: "s", handler: "conf-slow", region: "lanes", input: { seconds: 1.5 } }] });
  await mesh.putFlow({ id: "c-lane", steps: [{ id: "s", handler: "conf-shout", region: "lanes", input: { text: "{% input.text %}" } }] });
  await mesh.putFlow({ id: "c-pause", steps: [{ id: "p", handler: "conf-pause" }] });
  await mesh.putFlow({ id: "c-gpu", steps: [{ id: "s", handler: "conf-shout", require: ["gpu"], input: { text: "{% input.text %}" } }] });
  await mesh.putFlow({ id: "c-secret", steps: [{ id: "s", handler: "conf-secret", vault: ["conf-token"] }] });
  await mesh.putFlow({ id: "c-shout", steps: [{ id: "s", handler: "conf-shout", input: { text: "{% input.text %}" } }] });
  await mesh.putFlow({
    id: "c-dag",
    steps: [
      { id: "a", handler: "conf-shout", input: { text: "yes" } },
      { id: "b", handler: "conf-shout", dependsOn: ["a"], when: "{% steps.a.text = 'YES' %}", input: { text: "{% steps.a.text & '!' %}" } },
      { id: "c", handler: "conf-shout", dependsOn: ["a"], when: "{% steps.a.text = 'NO' %}", input: { text: "never" } },
    ],
    output: { b: "{% steps.b.text %}", c: "{% steps.c %}" },
  });
  await mesh.putFlow({ id: "c-flaky", steps: [{ id: "f", handler: "conf-flaky", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] });
  await mesh.putFlow({ id: "c-refuse", steps: [{ id: "r", handler: "conf-refuse", retry: { maxAttempts: 3, initialDelayMs: 10 } }] });
  await mesh.putFlow({ id: "c-map", steps: [{ id: "each", handler: "conf-shout", map: { items: "{% input.words %}", concurrency: 4 }, input: { text: "{% item %}" } }], output: "{% steps.each.text %}" });
  await mesh.putFlow({ id: "c-approve", steps: [{ id: "a", handler: "conf-approve" }] });
  await mesh.putFlow({ id: "c-emit", steps: [{ id: "e", handler: "conf-emit", input: { id: "{% input.id %}" } }] });
  await mesh.putFlow({ id: "c-count", steps: [{ id: "c", handler: "conf-count", input: { to: 10, pauseMs: 150 } }] });
  await mesh.putFlow({ id: "c-slow", steps: [{ id: "s", handler: "conf-slow", input: { seconds: "{% input.seconds %}" } }] });
  await mesh.putFlow({ id: "c-big-checkpoint", steps: [{ id: "b", handler: "conf-big-checkpoint", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] });
  // Two keys of 600,000 characters: a 1.2 MB context, over the engine's 256 KiB inline limit.
  await mesh.putFlow({
    id: "c-context",
    steps: [
      { id: "fill1", handler: "conf-fill", input: { key: "big1", size: 600_000 } },
      { id: "fill2", handler: "conf-fill", dependsOn: ["fill1"], input: { key: "big2", size: 600_000 } },
      { id: "read", handler: "conf-read", dependsOn: ["fill2"] },
      { id: "again", handler: "conf-read", dependsOn: ["read"] },
    ],
    output: { first: "{% steps.read %}", second: "{% steps.again %}" },
  });
}, 300_000);

afterAll(async () => {
  const langs = LANGUAGES.map((l) => l.lang);
  const rows = [...results.entries()].map(([scenario, by]) => `${scenario.padEnd(58)} ${langs.map((l) => (by.get(l) ?? "skip").padEnd(11)).join("")}`);
  console.log(["[conformance]", `${"scenario".padEnd(58)} ${langs.map((l) => l.padEnd(11)).join("")}`, ...rows].join("\n"));
  await mesh?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each(LANGUAGES)("the $lang worker", ({ lang, missing }) => {
  const workers: ChildProcess[] = [];
  /** Records the scenario's outcome for the table, then passes its failure on. */
  const scenario = (name: string, run: () => Promise<void>, timeoutMs = 60_000) =>
    it.skipIf(missing !== undefined)(name, async () => {
      const row = results.get(name) ?? new Map<Language, "pass" | "FAIL">();
      results.set(name, row);
      try {
        await run();
        row.set(lang, "pass");
      } catch (err) {
        row.set(lang, "FAIL");
        throw err;
      }
    }, timeoutMs);

  /** Registry entries already there when this language's worker started (an earlier language's, until their TTL). */
  const earlier = new Set<string>();
  beforeAll(async () => {
    if (missing) return;
    for (const w of (await listWorkers(mesh.nc, mesh.names, silentLogger())).workers) earlier.add(w.workerId);
    workers.push(await startWorker(lang));
  }, 300_000);
  afterAll(async () => {
    await Promise.all(workers.map((w) => stopped(w, "SIGKILL")));
  });

  scenario("runs a step; its progress is seen live on fm.progress.>", async () => {
    const seen: Progress[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) });
    try {
      const { executionId } = await mesh.api.start("c-shout", { input: { text: "hello" } });
      const done = await mesh.waitForStatus(executionId, "completed", 20_000);
      expect(done.output).toEqual({ text: "HELLO", lang });
      await waitFor(() => seen.some((p) => p.executionId === executionId && p.message === "halfway" && p.percent === 50) || undefined, { message: "the handler's progress" });
    } finally {
      sub.unsubscribe();
    }
  });

  scenario("a DAG with `when`: the true branch runs, the false one is skipped", async () => {
    const { executionId } = await mesh.api.start("c-dag", { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ b: "YES!", c: null });
    expect(done.steps.find((s) => s.stepId === "c")!.status).toBe("skipped");
  });

  scenario("a retryable failure is retried and then succeeds", async () => {
    const { executionId } = await mesh.api.start("c-flaky", { input: {} });
    expect((await mesh.waitForStatus(executionId, "completed", 20_000)).output).toEqual({ attempt: 2 });
  });

  scenario("a non-retryable failure fails the step at once with its code", async () => {
    const { executionId } = await mesh.api.start("c-refuse", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed", 20_000);
    expect(failed.error).toMatchObject({ code: "NOPE", message: "this input is refused", retryable: false });
    expect(failed.steps[0]!.attempts).toBe(1);
  });

  scenario("is in the fm_workers registry with its handlers and slots", async () => {
    const { workers: entries } = await listWorkers(mesh.nc, mesh.names, silentLogger());
    expect(entries.filter((w) => !earlier.has(w.workerId) && w.handlers.includes("conf-shout"))).toEqual([
      expect.objectContaining({ region: "us-east-1", handlers: expect.arrayContaining(["conf-approve", "conf-count", "conf-emit", "conf-flaky", "conf-refuse", "conf-shout", "conf-slow"]), concurrency: 4 }),
    ]);
  });

  scenario("runs a map step's items, each its own task", async () => {
    const { executionId } = await mesh.api.start("c-map", { input: { words: ["a", "b", "c", "d", "e", "f"] } });
    expect((await mesh.waitForStatus(executionId, "completed", 20_000)).output).toEqual(["A", "B", "C", "D", "E", "F"]);
  });

  scenario("SIGKILL mid-task: the task is redelivered to a second worker of the language", async () => {
    const { executionId } = await mesh.api.start("c-slow", { input: { seconds: 1 } });
    const jsm = await jetstreamManager(mesh.nc);
    const pool = mesh.names.consumers.taskPool("us-east-1", "conf-slow", "normal");
    await waitFor(async () => (await jsm.consumers.info(mesh.names.streams.tasks, pool)).num_ack_pending === 1 || undefined, { message: "the first worker holding the task" });
    const first = workers.shift()!;
    workers.push(await startWorker(lang));
    await stopped(first, "SIGKILL");
    // No heartbeat from the dead one: after ack_wait the server hands the task to the second.
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ slept: 1 });
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE execution_id = $1", [executionId]);
    // Redelivered, not retried: one attempt.
    expect(rows[0]!.n).toBe(1);
    expect(workerOf(done, "s")).not.toBe("");
  });

  scenario("waits without holding a worker; resumed by its token, with the payload", async () => {
    const { executionId } = await mesh.api.start("c-approve", { input: {} });
    const waiting = await mesh.waitForStatus(executionId, "waiting", 20_000);
    expect(waiting.steps[0]!.wait?.resumeToken).toBe(`tok-${executionId}`);
    await mesh.api.resume(`tok-${executionId}`, { ok: true });
    expect((await mesh.waitForStatus(executionId, "completed", 20_000)).output).toEqual({ reason: "token", payload: { ok: true } });
  });

  scenario("pauses with state, freeing its slot; resumed by its token, it loads the state", async () => {
    const { executionId } = await mesh.api.start("c-pause", { input: {} });
    const waiting = await mesh.waitForStatus(executionId, "waiting", 20_000);
    expect(waiting.steps[0]!.wait).toMatchObject({ resumeToken: `pause-${executionId}`, reason: "holding" });
    await mesh.api.resume(`pause-${executionId}`, {});
    expect((await mesh.waitForStatus(executionId, "completed", 20_000)).output).toEqual({ state: { n: 5 }, reason: "token" });
  });

  scenario("resumed by an event that another of its handlers emits", async () => {
    const waiter = await mesh.api.start("c-approve", { input: {} });
    await mesh.waitForStatus(waiter.executionId, "waiting", 20_000);
    await mesh.api.start("c-emit", { input: { id: waiter.executionId } });
    const done = await mesh.waitForStatus(waiter.executionId, "completed", 20_000);
    expect(done.output).toEqual({ reason: "event", payload: { id: waiter.executionId } });
  });

  scenario("checkpoint: a run killed midway is redelivered and resumes from its last checkpoint", async () => {
    const { executionId } = await mesh.api.start("c-count", { input: {} });
    const kv = await new Kvm(mesh.nc).open(mesh.names.buckets.checkpoints);
    const saved = async () => {
      const entry = await kv.get(STEP_KEYS.key("us-east-1", executionId, "c"));
      return entry?.operation === "PUT" ? (entry.json<{ state: { next: number } }>().state.next ?? 0) : 0;
    };
    await waitFor(async () => ((await saved()) >= 3 ? true : undefined), { message: "3 checkpoints saved" });
    // Killed before its replacement starts: a replacement that took longer to start than the
    // count's remaining second (a loaded machine) let the first worker finish on its own.
    await stopped(workers.shift()!, "SIGKILL");
    workers.push(await startWorker(lang));
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    const output = done.output as { resumedFrom: number; reached: number };
    expect(output.reached).toBe(10);
    // It carried on from a checkpoint the dead worker saved, not from 0.
    expect(output.resumedFrom).toBeGreaterThanOrEqual(3);
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE execution_id = $1", [executionId]);
    expect(rows[0]!.n).toBe(1);
  });

  scenario("reads a 1.2 MB context offloaded to fm_blobs key by key; its writes are applied", async () => {
    const { executionId } = await mesh.api.start("c-context", { input: {}, context: { marker: "m-1" } });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    const read = { marker: "m-1", big1: 600_000, big2: 600_000 };
    // The first read wrote `read`; the second run sees it, in the offloaded context it was given.
    expect(done.output).toEqual({ first: { ...read, readBefore: false }, second: { ...read, readBefore: true } });
    // The reads had no context in their task, only its reference: the engine stored it as blobs.
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM context_blobs WHERE execution_id = $1", [executionId]);
    expect(rows[0]!.n).toBeGreaterThanOrEqual(3);
  });

  scenario("a 1.5 MB checkpoint goes to the blob store and the retry loads it", async () => {
    const { executionId } = await mesh.api.start("c-big-checkpoint", { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 30_000);
    expect(done.output).toEqual({ loaded: 1_500_000, attempt: 2 });
    const kv = await new Kvm(mesh.nc).open(mesh.names.buckets.checkpoints);
    const envelope = (await kv.get(STEP_KEYS.key("us-east-1", executionId, "b")))?.json<{ blob?: string; bytes?: number }>();
    expect(envelope).toEqual({ blob: `checkpoints/${executionId}.b`, bytes: expect.any(Number) });
  });

  scenario("opens a secret sealed for its pool (and the task on the wire carries it sealed)", async () => {
    const tasks: string[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.tasksAll, { callback: (_err, msg) => void tasks.push(msg.string()) });
    await mesh.nc.flush();
    const { executionId } = await mesh.api.start("c-secret", { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    sub.unsubscribe();
    expect(done.output).toEqual({ length: SECRET.length, sha256: createHash("sha256").update(SECRET).digest("hex").slice(0, 16) });
    const ours = tasks.filter((t) => t.includes(executionId));
    expect(ours.length).toBeGreaterThan(0);
    for (const task of ours) expect(task.includes(SECRET)).toBe(false);
  });

  scenario("priority lanes: its one slot busy, the worker takes a high task before a low one queued first", async () => {
    const seen: Progress[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) });
    // The order the worker published its results in: with one slot, the order it ran the steps
    // (two fast steps can start in the same millisecond, so their start times cannot tell).
    const finished: string[] = [];
    const results = mesh.nc.subscribe(mesh.names.subjects.results("lanes"), { callback: (_err, m) => void finished.push(decode(m.data, TaskResult).executionId) });
    const lanes = await startWorker(lang, { FM_REGION: "lanes" }, 1);
    try {
      await mesh.nc.flush();
      const busy = await mesh.api.start("c-lane-busy", { input: {} });
      await waitFor(() => seen.some((p) => p.executionId === busy.executionId && p.message === "sleeping") || undefined, { message: "the one slot busy" });
      const low = await mesh.api.start("c-lane", { input: { text: "low" }, priority: "low" });
      const high = await mesh.api.start("c-lane", { input: { text: "high" }, priority: "high" });
      const [lowDone, highDone] = await Promise.all([mesh.waitForStatus(low.executionId, "completed", 20_000), mesh.waitForStatus(high.executionId, "completed", 20_000)]);
      expect(highDone.output).toEqual({ text: "HIGH", lang });
      expect(lowDone.output).toEqual({ text: "LOW", lang });
      const ran = finished.filter((id) => id === low.executionId || id === high.executionId);
      expect(ran).toEqual([high.executionId, low.executionId]);
    } finally {
      sub.unsubscribe();
      results.unsubscribe();
      expect(await stopped(lanes, "SIGTERM")).toBe(0);
    }
  });

  scenario("a step that requires a capability runs on the worker that offers it", async () => {
    const gpu = await startWorker(lang, { FM_CAPABILITIES: "gpu" });
    try {
      const entry = await waitFor(async () => (await listWorkers(mesh.nc, mesh.names, silentLogger())).workers.find((w) => w.capabilities.includes("gpu") && !earlier.has(w.workerId)), {
        message: "the gpu worker's registry entry",
      });
      expect(entry.capabilityPools).toBe(true);
      for (let i = 0; i < 3; i++) {
        const { executionId } = await mesh.api.start("c-gpu", { input: { text: `gpu ${i}` } });
        const done = await mesh.waitForStatus(executionId, "completed", 20_000);
        expect(done.output).toEqual({ text: `GPU ${i}`, lang });
        expect(workerOf(done, "s")).toBe(entry.workerId);
      }
    } finally {
      expect(await stopped(gpu, "SIGTERM")).toBe(0);
    }
  });

  scenario("stops a running handler when its execution is cancelled: EXECUTION_ENDED at once", async () => {
    const seen: Progress[] = [];
    const results: Array<{ executionId: string; outcome: string; failure?: { code: string } }> = [];
    const subs = [
      mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) }),
      mesh.nc.subscribe(mesh.names.subjects.resultsAll, { callback: (_err, m) => void results.push(m.json()) }),
    ];
    try {
      await mesh.nc.flush();
      // 30 s of sleep: the result can only come back in time if the worker stops the handler.
      const { executionId } = await mesh.api.start("c-slow", { input: { seconds: 30 } });
      await waitFor(() => seen.some((p) => p.executionId === executionId && p.message === "sleeping") || undefined, { message: "the handler running" });
      await mesh.api.cancel(executionId);
      const result = await waitFor(() => results.find((r) => r.executionId === executionId), { timeoutMs: 10_000, message: "the stopped handler's result" });
      expect(result).toMatchObject({ outcome: "failure", failure: { code: "EXECUTION_ENDED" } });
      expect((await mesh.api.get(executionId)).status).toBe("cancelled");
    } finally {
      for (const sub of subs) sub.unsubscribe();
    }
  });

  scenario("drains on SIGTERM: the running handler finishes, its result is applied, exit 0", async () => {
    // The handler's own progress, not the server's ack-pending count: a task pulled but not yet
    // started when SIGTERM lands is handed back for another worker (and there is none here).
    const seen: Progress[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) });
    try {
      await mesh.nc.flush();
      const { executionId } = await mesh.api.start("c-slow", { input: { seconds: 1 } });
      await waitFor(() => seen.some((p) => p.executionId === executionId && p.message === "sleeping") || undefined, { message: "the handler running" });
      expect(await stopped(workers[0]!, "SIGTERM")).toBe(0);
      expect((await mesh.waitForStatus(executionId, "completed", 10_000)).output).toEqual({ slept: 1 });
    } finally {
      sub.unsubscribe();
    }
  });
});
