/**
 * Workers of three languages on one mesh at once (the per-language protocol scenarios are in
 * conformance.test.ts): one execution whose steps run on the TypeScript, Python and Go workers,
 * and one pool served by a Go and a Python worker at the same time.
 *
 * Needs the Go toolchain (/usr/local/go/bin, or FM_GO) and the Python SDK's venv
 * (.cache/py-venv, from `bash .ci/run system`); skipped with that message where either is missing.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { startProcessUntilReady } from "../support/ready-process.js";

const ROOT = resolve(import.meta.dirname, "../..");
const GO = process.env["FM_GO"] ?? ["/usr/local/go/bin/go", "/usr/bin/go"].find((p) => existsSync(p));
const PYTHON = process.env["FM_PYTHON"] ?? join(ROOT, ".cache/py-venv/bin/python");
const havePython = existsSync(PYTHON);
if (!GO) console.warn("[mixed-languages] skipped: no Go toolchain at /usr/local/go/bin/go (set FM_GO)");
if (!havePython) console.warn(`[mixed-languages] skipped: no Python venv at ${PYTHON} (bash .ci/run system)`);

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

/** Starts a worker process on the mesh; closed (SIGKILL) with the test file. */
async function startProcess(cmd: string, args: string[], env: Record<string, string>): Promise<ChildProcess> {
  const child = await startProcessUntilReady(cmd, args, { NATS_URL: nats.url, FM_PREFIX: mesh.prefix, ...env });
  children.push(child);
  return child;
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

describe.skipIf(!GO || !havePython)("workers of three languages on one mesh", () => {
  it("one execution runs on TypeScript, Python and Go workers; one pool is served by Go and Python at once", async () => {
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
});
