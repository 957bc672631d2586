/**
 * A worker written in Go (sdks/go, nats.go's jetstream package) on a real mesh: its step of a
 * flow whose other steps run on the TypeScript and Python workers (one execution, three
 * languages), progress on fm.progress.>, a retryable failure then success, a non-retryable
 * failure, the fm_workers registry entry, a pool served by Go and Python workers at once, and a
 * drain on SIGTERM that finishes the running handler first.
 *
 * Builds sdks/go/cmd/flowmonkey-example-worker with the Go toolchain (/usr/local/go/bin, or
 * FM_GO); skipped with that message where there is none. The three-language flow also needs
 * the Python SDK's venv (.cache/py-venv).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, listWorkers, Progress, silentLogger } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const ROOT = resolve(import.meta.dirname, "../..");
const GO = process.env["FM_GO"] ?? ["/usr/local/go/bin/go", "/usr/bin/go"].find((p) => existsSync(p));
const PYTHON = process.env["FM_PYTHON"] ?? join(ROOT, ".cache/py-venv/bin/python");
const havePython = existsSync(PYTHON);
if (!GO) console.warn("[go-worker] skipped: no Go toolchain at /usr/local/go/bin/go (set FM_GO)");

const PY_HANDLERS = `
import asyncio
from flowmonkey import define_handler

async def shout(ctx):
    return {"text": str(ctx.input.get("text", "")).upper() + "!", "by": "python"}

async def nap(ctx):
    await asyncio.sleep(0.1)
    return {"by": "python"}

HANDLERS = [define_handler("py-shout", shout), define_handler("go-nap", nap)]
`;

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let dir: string;
let binary: string;
const children: ChildProcess[] = [];

/** Starts a process and resolves once it printed `worker started`. */
function startProcess(cmd: string, args: string[], env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: { ...process.env, NATS_URL: nats.url, FM_PREFIX: mesh.prefix, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${cmd} did not start in 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("worker started")) {
        clearTimeout(timer);
        ok(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => fail(new Error(`${cmd} exited with ${code}:\n${output}`)));
  });
}

const startGo = () => startProcess(binary, ["--region", "us-east-1", "--concurrency", "4"], {});

beforeAll(async () => {
  if (!GO) return;
  dir = await mkdtemp(join(tmpdir(), "fm-go-"));
  binary = join(dir, "flowmonkey-example-worker");
  // The module's dependencies come from the Go module proxy (cached after the first build).
  await promisify(execFile)(GO, ["build", "-o", binary, "./cmd/flowmonkey-example-worker"], { cwd: join(ROOT, "sdks/go"), timeout: 240_000 });
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] });
  await startGo();
  await mesh.putFlow({ id: "go-flaky", steps: [{ id: "f", handler: "go-flaky", retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false } }] });
  await mesh.putFlow({ id: "go-refuse", steps: [{ id: "r", handler: "go-refuse", retry: { maxAttempts: 3, initialDelayMs: 10 } }] });
  await mesh.putFlow({ id: "go-slow", steps: [{ id: "s", handler: "go-slow", input: { seconds: 1.5 } }] });
  await mesh.putFlow({ id: "go-map", steps: [{ id: "each", handler: "go-nap", map: { items: "{% input.words %}", concurrency: 10 }, input: { text: "{% item %}" } }], output: "{% steps.each.by %}" });
  await mesh.putFlow({
    id: "three-languages",
    steps: [
      { id: "ts", handler: "echo", input: { text: "{% input.text %}" } },
      { id: "py", handler: "py-shout", input: { text: "{% steps.ts.text %}" } },
      { id: "go", handler: "go-shout", input: { text: "{% steps.py.text %}" } },
    ],
    output: { ts: "{% steps.ts %}", py: "{% steps.py.by %}", go: "{% steps.go %}" },
  });
}, 300_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await mesh?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!GO)("a Go worker (sdks/go) on the mesh", () => {
  it("runs its step with live progress; retryable failures are retried, non-retryable ones fail the step", async () => {
    const seen: Progress[] = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_err, m) => void seen.push(decode(m.data, Progress)) });
    await mesh.putFlow({ id: "go-one", steps: [{ id: "g", handler: "go-shout", input: { text: "{% input.text %}" } }] });
    const { executionId } = await mesh.api.start("go-one", { input: { text: "gopher" } });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ text: "GOPHER", by: "go" });
    expect(done.steps[0]!.history?.[0]?.workerId).toMatch(/^go-/);
    await waitFor(() => seen.some((p) => p.executionId === executionId && p.message === "halfway in go") || undefined, { message: "the Go handler's progress" });
    sub.unsubscribe();

    const flaky = await mesh.api.start("go-flaky", { input: {} });
    expect((await mesh.waitForStatus(flaky.executionId, "completed", 20_000)).output).toEqual({ attempt: 2 });
    const refused = await mesh.api.start("go-refuse", { input: {} });
    const failed = await mesh.waitForStatus(refused.executionId, "failed", 20_000);
    expect(failed.error).toMatchObject({ code: "NOPE", message: "this input is refused", retryable: false });
    expect(failed.steps[0]!.attempts).toBe(1);
  });

  it("is in the worker registry", async () => {
    const { workers } = await listWorkers(mesh.nc, mesh.names, silentLogger());
    expect(workers.find((w) => w.workerId.startsWith("go-"))).toMatchObject({ region: "us-east-1", handlers: ["go-echo", "go-flaky", "go-nap", "go-refuse", "go-shout", "go-slow"], concurrency: 4 });
  });

  it.skipIf(!havePython)("one execution runs on TypeScript, Python and Go workers; one pool is served by Go and Python at once", async () => {
    const py = join(dir, "handlers.py");
    await writeFile(py, PY_HANDLERS);
    await startProcess(PYTHON, ["-m", "flowmonkey", "--module", py, "--region", "us-east-1", "--concurrency", "4"], { PYTHONPATH: join(ROOT, "sdks/python"), LOG_LEVEL: "WARNING" });
    const { executionId } = await mesh.api.start("three-languages", { input: { text: "mesh" } });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ ts: { text: "mesh" }, py: "python", go: { text: "MESH!", by: "go" } });
    const workerOf = (stepId: string) => done.steps.find((s) => s.stepId === stepId)!.history?.[0]?.workerId ?? "";
    expect(workerOf("ts")).not.toMatch(/^(py|go)-/);
    expect(workerOf("py")).toMatch(/^py-/);
    expect(workerOf("go")).toMatch(/^go-/);

    // The go-nap pool has a Go and a Python worker (4 slots each, at most one task held beyond
    // them): 10 items of 100 ms in flight at once cannot all fit on one of them.
    const map = await mesh.api.start("go-map", { input: { words: Array.from({ length: 40 }, (_, i) => `w${i}`) } });
    const by = (await mesh.waitForStatus(map.executionId, "completed", 30_000)).output as string[];
    expect(by).toHaveLength(40);
    expect(new Set(by)).toEqual(new Set(["go", "python"]));
  });

  it("drains on SIGTERM: the running handler finishes and its result is applied before the process exits", async () => {
    const { executionId } = await mesh.api.start("go-slow", { input: {} });
    const jsm = await jetstreamManager(mesh.nc);
    await waitFor(async () => (await jsm.consumers.info(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", "go-slow", "normal"))).num_ack_pending === 1 || undefined, {
      message: "the Go worker holding the slow task",
    });
    const go = children[0]!;
    const exited = new Promise<number | null>((r) => go.once("exit", (code) => r(code)));
    go.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect((await mesh.waitForStatus(executionId, "completed", 10_000)).output).toEqual({ slept: 1.5 });
  });
});
