/**
 * A worker written in Python (sdks/python, nats-py) on a real mesh, next to the TypeScript
 * worker: one flow whose steps run in both languages, progress on fm.progress.>, a retryable
 * failure then success, a non-retryable failure, the fm_workers registry entry, a map step's
 * items, and a drain on SIGTERM that finishes the running handler first.
 *
 * Needs the SDK's venv (`bash .ci/run system` makes .cache/py-venv with nats-py); skipped with
 * that message where there is none.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, listWorkers, Progress, silentLogger } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const ROOT = resolve(import.meta.dirname, "../..");
const PYTHON = process.env["FM_PYTHON"] ?? join(ROOT, ".cache/py-venv/bin/python");
const havePython = existsSync(PYTHON);
if (!havePython) console.warn(`[python-worker] skipped: no Python venv at ${PYTHON} (bash .ci/run system makes it, or set FM_PYTHON)`);

const HANDLERS = `
import asyncio
from flowmonkey import NonRetryableFailure, RetryableFailure, define_handler

async def shout(ctx):
    await ctx.progress(50, "halfway in python")
    return {"text": str(ctx.input.get("text", "")).upper(), "by": "python"}

def flaky(ctx):
    if ctx.attempt == 1:
        raise RetryableFailure("FLAKY", "the first attempt fails")
    return {"attempt": ctx.attempt}

def refuse(ctx):
    raise NonRetryableFailure("NOPE", "this input is refused")

async def slow(ctx):
    await asyncio.sleep(ctx.input["seconds"])
    return {"slept": ctx.input["seconds"]}

HANDLERS = [define_handler("py-shout", shout), define_handler("py-flaky", flaky), define_handler("py-refuse", refuse), define_handler("py-slow", slow)]
`;

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let dir: string;
let python: ChildProcess | undefined;
let output = "";

function startPython(): Promise<ChildProcess> {
  const child = spawn(PYTHON, ["-m", "flowmonkey", "--module", join(dir, "handlers.py"), "--region", "us-east-1", "--concurrency", "4"], {
    env: { ...process.env, PYTHONPATH: join(ROOT, "sdks/python"), NATS_URL: nats.url, FM_PREFIX: mesh.prefix, LOG_LEVEL: "WARNING" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the Python worker did not start in 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("worker started")) {
        clearTimeout(timer);
        ok(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => fail(new Error(`the Python worker exited with ${code}:\n${output}`)));
  });
}

beforeAll(async () => {
  if (!havePython) return;
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] });
  dir = await mkdtemp(join(tmpdir(), "fm-py-"));
  await writeFile(join(dir, "handlers.py"), HANDLERS);
  python = await startPython();
  await mesh.putFlow({
    id: "two-languages",
    steps: [
      { id: "tsBefore", handler: "echo", input: { text: "{% input.text %}" } },
      { id: "py", handler: "py-shout", input: { text: "{% steps.tsBefore.text %}" } },
      { id: "tsAfter", handler: "echo", input: { got: "{% steps.py %}" } },
    ],
    output: "{% steps.tsAfter.got %}",
  });
  await mesh.putFlow({ id: "py-flaky", steps: [{ id: "f", handler: "py-flaky", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] });
  await mesh.putFlow({ id: "py-refuse", steps: [{ id: "r", handler: "py-refuse", retry: { maxAttempts: 3, initialDelayMs: 10 } }] });
  await mesh.putFlow({ id: "py-map", steps: [{ id: "each", handler: "py-shout", map: { items: "{% input.words %}", concurrency: 3 }, input: { text: "{% item %}" } }], output: "{% steps.each.text %}" });
  await mesh.putFlow({ id: "py-slow", steps: [{ id: "s", handler: "py-slow", input: { seconds: 1.5 } }] });
});

afterAll(async () => {
  if (python && python.exitCode === null && python.signalCode === null) {
    python.kill("SIGKILL");
  }
  await mesh?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!havePython)("a Python worker (sdks/python) on the mesh", () => {
  it("runs its step of a flow whose other steps run on the TypeScript worker, with live progress", async () => {
    const seen: Progress[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) });
    const { executionId } = await mesh.api.start("two-languages", { input: { text: "hello" } });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ text: "HELLO", by: "python" });
    await waitFor(() => seen.some((p) => p.executionId === executionId && p.stepId === "py" && p.message === "halfway in python") || undefined, {
      message: "the Python handler's progress",
    });
    sub.unsubscribe();
    const py = done.steps.find((s) => s.stepId === "py")!;
    expect(py.history?.[0]?.workerId).toMatch(/^py-/);
    expect(done.steps.find((s) => s.stepId === "tsAfter")!.history?.[0]?.workerId).not.toMatch(/^py-/);
  });

  it("a retryable failure is retried, a non-retryable one fails the step with its code", async () => {
    const flaky = await mesh.api.start("py-flaky", { input: {} });
    expect((await mesh.waitForStatus(flaky.executionId, "completed", 20_000)).output).toEqual({ attempt: 2 });
    const refused = await mesh.api.start("py-refuse", { input: {} });
    const failed = await mesh.waitForStatus(refused.executionId, "failed", 20_000);
    expect(failed.error).toMatchObject({ code: "NOPE", message: "this input is refused", retryable: false });
    expect(failed.steps[0]!.attempts).toBe(1);
  });

  it("is in the worker registry, and runs a map step's items", async () => {
    const { workers } = await listWorkers(mesh.nc, mesh.names, silentLogger());
    const entry = workers.find((w) => w.workerId.startsWith("py-"));
    expect(entry).toMatchObject({ region: "us-east-1", handlers: ["py-flaky", "py-refuse", "py-shout", "py-slow"], concurrency: 4 });
    const { executionId } = await mesh.api.start("py-map", { input: { words: ["a", "b", "c", "d"] } });
    expect((await mesh.waitForStatus(executionId, "completed", 20_000)).output).toEqual(["A", "B", "C", "D"]);
  });

  it("drains on SIGTERM: the running handler finishes and its result is applied before the process exits", async () => {
    const { executionId } = await mesh.api.start("py-slow", { input: {} });
    await waitFor(async () => (await mesh.api.get(executionId)).steps[0]!.status === "dispatched" || undefined, { message: "the slow step dispatched" });
    // The Python worker has taken it (its pool consumer holds one unacked delivery) before it is asked to stop.
    const jsm = await jetstreamManager(mesh.nc);
    await waitFor(async () => (await jsm.consumers.info(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", "py-slow", "normal"))).num_ack_pending === 1 || undefined, {
      message: "the Python worker holding the slow task",
    });
    const exited = new Promise<number | null>((r) => python!.once("exit", (code) => r(code)));
    const stoppedAt = Date.now();
    python!.kill("SIGTERM");
    expect(await exited).toBe(0);
    // It waited for the 1.5 s handler, not for a 30 s timeout of its own.
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    const done = await mesh.waitForStatus(executionId, "completed", 10_000);
    expect(done.output).toEqual({ slept: 1.5 });
  });
});
