/**
 * `flowmonkey dev` (or a test run) killed with SIGKILL leaves nothing running: its children and
 * its nats-server are started through withParentDeath, so the kernel signals them when it dies.
 * Real processes: a stand-in dev process starts a real nats-server and a child the way the dev
 * mesh does; the test SIGKILLs it and waits, with a deadline, for both to go.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../support/wait.js";
import { isAlive, killStarted, startedPids } from "../../worker/test/process-tree.js";

const OWNER = fileURLToPath(new URL("../fixtures/dev-owner.mjs", import.meta.url));
const alive = isAlive;
const started = startedPids;
afterEach(killStarted);

describe.skipIf(process.platform !== "linux")("a SIGKILLed dev process leaves no orphans", () => {
  it("its nats-server and its children end with it", async () => {
    const owner = spawn(process.execPath, [OWNER], { stdio: ["pipe", "pipe", "inherit"] });
    started.push(owner.pid!);
    const pids: { natsPid?: number; childPid?: number } = {};
    createInterface({ input: owner.stdout! }).on("line", (line) => {
      const json = line.slice(line.indexOf("{"));
      try {
        Object.assign(pids, JSON.parse(json));
      } catch {
        // a log line
      }
    });
    await waitFor(() => (pids.natsPid && pids.childPid ? pids : undefined), { timeoutMs: 20_000, message: "the stand-in to start its server and child" });
    started.push(pids.natsPid!, pids.childPid!);
    expect(alive(pids.natsPid!) && alive(pids.childPid!)).toBe(true);

    owner.kill("SIGKILL");
    await waitFor(() => (!alive(pids.natsPid!) && !alive(pids.childPid!)) || undefined, { timeoutMs: 10_000, message: "the server and the child to end" });
  });
});
