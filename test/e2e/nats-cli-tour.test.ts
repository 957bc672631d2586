/**
 * The README's five-minute tour, run with the real `nats` CLI (natscli) against a real mesh.
 *
 * The commands are read from README.md itself — every line of the tour's first code block that
 * starts with `nats ` — so what the README prints is what this test runs. A `# {…}` comment
 * under a command is its expected answer (`…` stands for any string); a `…` in a command is the
 * execution id the tour's `nats req` start answered. `curl` lines need the gateway and are left
 * to the gateway's own tests.
 *
 * The CLI is FM_NATS_CLI (what .ci/run builds with `go install`), else `nats` on PATH; with
 * neither the file is skipped, saying so. FM_NATS_CLI naming a missing binary fails.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFlowFile } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function findCli(): string | undefined {
  const chosen = process.env["FM_NATS_CLI"];
  if (chosen) {
    accessSync(chosen, constants.X_OK); // named but missing: fail loudly, never skip
    return chosen;
  }
  const found = spawnSync("sh", ["-c", "command -v nats"], { encoding: "utf8" }).stdout.trim();
  return found || undefined;
}
const CLI = findCli();
if (!CLI) console.warn("nats-cli-tour: skipped — no `nats` CLI (set FM_NATS_CLI, or `go install github.com/nats-io/natscli/nats@v0.5.0`)");

interface TourStep {
  command: string;
  background: boolean;
  /** The `# {…}` answer printed under it, if any. */
  expected?: unknown;
}

/** The `nats` commands of the README's tour, in order, each with its printed answer. */
export function tourSteps(readme: string): TourStep[] {
  const section = readme.slice(readme.indexOf("## A five-minute tour"));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error("README.md has no bash block under '## A five-minute tour'");
  const steps: TourStep[] = [];
  for (const raw of block.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("nats ")) {
      const background = line.endsWith("&");
      steps.push({ command: background ? line.slice(0, -1).trim() : line, background });
    } else if (line.startsWith("# {") && steps.length > 0) {
      steps.at(-1)!.expected = JSON.parse(line.slice(2));
    }
  }
  return steps;
}

/** `expected` with "…" matching any string. */
function shapeOf(expected: unknown): unknown {
  if (expected === "…") return expect.any(String);
  if (Array.isArray(expected)) return expected.map(shapeOf);
  if (expected && typeof expected === "object") return Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, shapeOf(v)]));
  return expected;
}

/** The JSON document a `nats req` printed (its last JSON line on stdout). */
function answerOf(stdout: string): unknown {
  const line = stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("{"))
    .at(-1);
  if (line === undefined) throw new Error(`no JSON answer in: ${stdout}`);
  return JSON.parse(line);
}

describe.skipIf(!CLI)("the README's tour with the real nats CLI", () => {
  const nats = useNatsServer();
  const pg = useTestDatabase();
  let mesh: TestMesh;
  const background: { command: string; child: ChildProcess; out: string[] }[] = [];
  // The tour's commands as a user types them: `nats` on PATH, the server in NATS_URL.
  const env = () => ({ ...process.env, PATH: `${dirname(CLI!)}:${process.env["PATH"]}`, NATS_URL: nats.url });
  // Asynchronous: the engine answering the CLI runs in this process's event loop.
  const shell = (command: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile("bash", ["-c", command], { env: env(), encoding: "utf8", timeout: 20_000 }, (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  beforeAll(async () => {
    // The tour's subjects are the default prefix's: this file's own server, prefix "fm".
    mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, prefix: "fm" });
    await mesh.putFlow(await loadFlowFile(join(ROOT, "examples/flows/hello.yaml")));
  });
  afterAll(async () => {
    for (const b of background) b.child.kill("SIGKILL");
    await mesh?.close();
  });

  it("runs every nats command the README prints and gets the answers it prints", async () => {
    const steps = tourSteps(readFileSync(join(ROOT, "README.md"), "utf8"));
    expect(steps.map((s) => s.command.split(" ").slice(0, 2).join(" "))).toEqual(expect.arrayContaining(["nats pub", "nats req", "nats sub", "nats micro"]));
    let executionId: string | undefined;
    for (const step of steps) {
      const command = executionId === undefined ? step.command : step.command.replaceAll("…", executionId);
      if (step.background) {
        const child = spawn("bash", ["-c", `exec ${command}`], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
        const out: string[] = [];
        child.stdout!.on("data", (chunk: Buffer) => out.push(chunk.toString("utf8")));
        child.stderr!.on("data", (chunk: Buffer) => out.push(chunk.toString("utf8")));
        background.push({ command, child, out });
        // A subscription is live once the CLI says so: only then is the next publish seen.
        await waitFor(() => out.join("").includes("Subscribing on") || undefined, { timeoutMs: 10_000, message: `${command} to subscribe` });
        continue;
      }
      const result = await shell(command);
      expect(result.status, `${command}\n${result.stderr}`).toBe(0);
      if (command.startsWith("nats req")) {
        const answer = answerOf(`${result.stdout}\n${result.stderr}`);
        if (step.expected !== undefined) expect(answer, command).toEqual(shapeOf(step.expected));
        const id = (answer as { executionId?: unknown }).executionId;
        if (typeof id === "string" && executionId === undefined) executionId = id;
        if (command.includes("fm.api.executions.get")) {
          expect(answer).toMatchObject({ flowId: "hello" });
          expect(JSON.stringify(answer)).toContain(executionId);
        }
      }
      if (command.startsWith("nats micro")) expect(result.stdout, command).toContain("flowmonkey");
    }
    expect(executionId, "the tour's nats req start answered an execution id").toBeDefined();

    // The started executions run to the end, and the background subscriptions saw them live.
    await mesh.waitForStatus(executionId!, "completed", 30_000);
    const execSub = background.find((b) => b.command.includes("fm.exec.>"));
    const progressSub = background.find((b) => b.command.includes("fm.progress.>"));
    expect(execSub && progressSub, "the tour subscribes to fm.exec.> and fm.progress.>").toBeTruthy();
    await waitFor(() => execSub!.out.join("").match(new RegExp(`fm\\.exec\\.hello\\.${executionId}\\.completed`)) ?? undefined, {
      timeoutMs: 10_000,
      message: "nats sub 'fm.exec.>' to print the execution's completed event",
    });
    // Both starts (the plain publish and the request) were seen by the subscriber.
    expect(new Set(execSub!.out.join("").match(/fm\.exec\.hello\.[^.]+\.started/g)).size).toBeGreaterThanOrEqual(2);
    expect(progressSub!.out.join("")).toMatch(/Received on "fm\.progress\./);
  });
});
