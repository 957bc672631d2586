/**
 * What the OS guarantees about a sandbox process (launcher.ts), checked on real processes.
 *
 * A sandbox must not outlive its worker, however the worker dies. The hard case: the worker is
 * SIGKILLed (no exit hook runs) while its sandbox spins in a synchronous loop (the sandbox's
 * own disconnect handler never runs). Real processes: a stand-in worker process starts a real
 * sandbox, the test SIGKILLs the stand-in and waits, with a deadline, for the sandbox to go.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { silentLogger } from "@flowmonkey/shared";
import { SandboxProcess } from "../../src/sandbox/sandbox-process.js";
import { afterEach, describe, expect, it } from "vitest";
import { SANDBOX_NICENESS } from "../../src/sandbox/isolation.js";
import { isAlive, killStarted, sandboxNodePid, startedPids } from "../process-tree.js";
import { testIsolation } from "../sandbox-helpers.js";

const OWNER = fileURLToPath(new URL("../fixtures/spinning-sandbox-owner.mjs", import.meta.url));

const alive = isAlive;
const started = startedPids;

async function gone(pid: number, deadlineMs: number): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !alive(pid);
}

afterEach(killStarted);

describe.skipIf(process.platform !== "linux")("a sandbox dies with its worker", () => {
  it("a sandbox spinning in a synchronous loop is killed when its worker is SIGKILLed", async () => {
    const owner = spawn(process.execPath, [OWNER], { stdio: ["ignore", "pipe", "inherit"] });
    started.push(owner.pid!);
    const lines = createInterface({ input: owner.stdout! });
    const [line] = (await Promise.race([
      once(lines, "line"),
      once(owner, "exit").then(() => {
        throw new Error("the stand-in worker exited before its sandbox started spinning");
      }),
    ])) as [string];
    // The launcher chain (setpriv, unshare) and the node process at its end, spinning.
    const { sandboxPids } = JSON.parse(line) as { sandboxPids: number[] };
    started.push(...sandboxPids);
    expect(sandboxPids.length).toBeGreaterThan(1);
    for (const pid of sandboxPids) expect(alive(pid)).toBe(true);

    owner.kill("SIGKILL");
    await once(owner, "exit");

    for (const pid of sandboxPids) expect(await gone(pid, 5000)).toBe(true);
  });
});

/** A process's nice value: field 19 of /proc/<pid>/stat (after the parenthesised command name). */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

describe.skipIf(process.platform !== "linux")("a sandbox yields the CPU to its worker", () => {
  it(`runs ${SANDBOX_NICENESS} nice levels below the process that started it`, async () => {
    const launcher = (await testIsolation()).launcher();
    const sandbox = await SandboxProcess.spawn({ code: "var __fmHandler = { default: { execute() { return 1; } } };", filename: "nice@1.0.0", heapMb: 32, env: {}, launcher, log: silentLogger() });
    try {
      expect(niceOf(sandboxNodePid(sandbox.pid!))).toBe(Math.min(19, niceOf(process.pid) + SANDBOX_NICENESS));
    } finally {
      sandbox.kill();
    }
  });
});
