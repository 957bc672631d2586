/**
 * The packages install the way users install them: `npm pack` of the workspaces, the tarballs
 * installed into an empty project outside the repository, a handler written there with
 * `defineHandler`, and `npx flowmonkey-worker --handler-modules` serving it against a real mesh
 * (nats-server and PostgreSQL) until a flow completes. Dependencies come from the npm registry
 * (or npm's cache: --prefer-offline).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WORKSPACES = ["shared", "engine", "worker", "gateway"] as const;

const HANDLERS = `
import { defineHandler } from "@flowmonkey/worker";
import { z } from "zod";

export const shout = defineHandler({
  type: "shout",
  input: z.object({ text: z.string() }),
  async execute(ctx) {
    await ctx.progress.update(50, "shouting");
    return { shouted: ctx.input.text.toUpperCase() + "!" };
  },
});
`;

describe("the published packages", () => {
  const nats = useNatsServer();
  const pg = useTestDatabase();
  let mesh: TestMesh;
  let project: string;
  let packs: string;
  const tarballs = new Map<string, { filename: string; files: string[] }>();
  let worker: ChildProcess | undefined;
  let workerLog = "";

  beforeAll(async () => {
    packs = mkdtempSync(join(tmpdir(), "fm-packs-"));
    project = mkdtempSync(join(tmpdir(), "fm-user-project-"));
    for (const ws of WORKSPACES) {
      const { stdout } = await run("npm", ["pack", "--json", "--workspace", ws, "--pack-destination", packs], { cwd: ROOT });
      const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
      tarballs.set(ws, { filename: join(packs, info.filename), files: info.files.map((f) => f.path) });
    }
    await run("npm", ["init", "-y"], { cwd: project });
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "zod", tarballs.get("shared")!.filename, tarballs.get("worker")!.filename], {
      cwd: project,
      timeout: 240_000,
    });
    writeFileSync(join(project, "handlers.mjs"), HANDLERS);
    mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [] });
  }, 300_000);

  afterAll(async () => {
    // The group, not just npx: killing npx alone left the worker it started running.
    if (worker?.pid !== undefined) {
      try {
        process.kill(-worker.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await mesh?.close();
    for (const dir of [packs, project]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("pack with their binaries and built code, without sources, tests or build info", () => {
    for (const [ws, { files }] of tarballs) {
      expect(files, ws).toContain("package.json");
      expect(files, ws).toContain("dist/index.js");
      expect(files.filter((f) => /\.tsbuildinfo$|\.map$|^src\/|^test\//.test(f)), ws).toEqual([]);
    }
    expect(tarballs.get("engine")!.files).toContain("dist/main.js");
    expect(tarballs.get("worker")!.files).toEqual(expect.arrayContaining(["dist/main.js", "dist/sandbox/child.js"]));
    expect(tarballs.get("gateway")!.files).toEqual(expect.arrayContaining(["dist/main.js", "dist/cli/main.js", "dist/dashboard/index.html"]));
  });

  it("npx flowmonkey-worker serves a handler written with defineHandler in a user's project, and a flow completes", async () => {
    worker = spawn("npx", ["--no-install", "flowmonkey-worker", "--region", "us-east-1", "--handler-modules", "./handlers.mjs"], {
      cwd: project,
      // Its own process group: npx runs the worker as a child, and afterAll ends the whole group.
      detached: true,
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? project, NATS_URL: nats.url, FM_PREFIX: mesh.prefix, FM_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    worker.stdout!.on("data", (c: Buffer) => (workerLog += c.toString("utf8")));
    worker.stderr!.on("data", (c: Buffer) => (workerLog += c.toString("utf8")));

    await mesh.putFlow({ id: "packaged", steps: [{ id: "loud", handler: "shout", input: { text: "{% input.text %}" } }], output: "{% steps.loud.shouted %}" });
    const { executionId } = await mesh.api.start("packaged", { input: { text: "installed" } });
    const view = await mesh.waitForStatus(executionId, ["completed", "failed"], 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- worker log ---\n${workerLog.slice(-3000)}`);
    });
    expect(view.status, workerLog.slice(-3000)).toBe("completed");
    expect(view.output).toBe("INSTALLED!");
    // It is the installed binary that ran it (its log names the handler it serves).
    await waitFor(() => workerLog.includes("shout") || undefined, { timeoutMs: 5000, message: "the worker's log to name its handler" });
  });
});
