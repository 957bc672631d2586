/**
 * The OS layers of the sandbox (isolation.ts) hold against a handler that owns its process.
 *
 * The JavaScript layer is assumed broken here: the hostile code runs as the sandbox process's
 * main script, with the real `process`, `require` and no Node permission model, under the same
 * launcher chain the worker starts sandboxes with. What it tries is what the escape did
 * and what comes next: a loopback connection, signalling a root process, writing files,
 * reading a root-only file, seeing other processes, mapping more memory than its limit.
 */
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@flowmonkey/shared";
import { prepareIsolation, type SandboxIsolation } from "../../src/sandbox/isolation.js";
import { SANDBOX_RUNTIME_ENV } from "../../src/sandbox/sandbox-process.js";

const run = promisify(execFile);
const MEMORY_MB = 128;

// Each attempt's outcome: "ok" (it worked: a hole) or the error code it met.
const HOSTILE = String.raw`
const fs = require("fs"), net = require("net"), cp = require("child_process");
const [port, victim, secret, scratch] = JSON.parse(process.argv[1]);
const out = {};
const attempt = (name, fn) => { try { fn(); out[name] = "ok"; } catch (e) { out[name] = e.code || e.message; } };
attempt("signalVictim", () => process.kill(victim, "SIGKILL"));
attempt("signalParent", () => { if (process.ppid === 0) throw Object.assign(new Error(), { code: "NO_PARENT" }); process.kill(process.ppid, "SIGKILL"); });
attempt("writeTmp", () => fs.writeFileSync(scratch, "x"));
attempt("writeCwd", () => fs.writeFileSync("planted", "x"));
attempt("readSecret", () => fs.readFileSync(secret, "utf8"));
attempt("shellWrite", () => { const r = cp.spawnSync("sh", ["-c", "echo x > " + scratch + ".sh"]); if (r.error) throw r.error; if (r.status !== 0) throw Object.assign(new Error(), { code: "EXIT_" + r.status }); });
out.processes = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
out.interfaces = Object.keys(require("os").networkInterfaces());
out.limits = fs.readFileSync("/proc/self/limits", "utf8");
out.uid = process.getuid();
let mb = 0; const keep = [];
try { for (; mb < 4096; mb += 16) keep.push(new Uint8Array(16 << 20).fill(1)); } catch (e) { out.memoryStop = e.message; }
out.allocatedMb = mb;
keep.length = 0;
const socket = net.connect(port, "127.0.0.1");
socket.on("connect", () => { out.connect = "ok"; finish(); });
socket.on("error", (e) => { out.connect = e.code; finish(); });
function finish() { process.stdout.write(JSON.stringify(out)); process.exit(0); }
`;

describe.skipIf(process.platform !== "linux")("OS isolation with process in hand", () => {
  let isolation: SandboxIsolation;
  let listener: Server;
  let connections = 0;
  let port = 0;
  let dir: string;
  const victim = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });

  beforeAll(async () => {
    isolation = await prepareIsolation({ mode: "os", memoryMb: MEMORY_MB }, ["--max-old-space-size=64"], silentLogger());
    listener = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    port = (listener.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), "fm-isolation-"));
  });
  afterAll(() => {
    victim.kill("SIGKILL");
    listener.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("in os mode every layer is there (the worker would refuse otherwise)", () => {
    expect(isolation.missing).toEqual([]);
    expect(isolation.layers).toEqual(expect.arrayContaining(["user", "namespaces", "read-only", "rlimits", "parent-death"]));
  });

  it("cannot connect, signal, write, read root's files, see processes, or map past its memory limit", async () => {
    const secret = join(dir, "secret");
    writeFileSync(secret, "the worker's credentials", { mode: 0o600 });
    const scratch = join(tmpdir(), `fm-planted-${process.pid}`);
    const [command, ...args] = [...isolation.launcher(), process.execPath, "--max-old-space-size=64", "-e", HOSTILE, JSON.stringify([port, victim.pid, secret, scratch])];
    const { stdout } = await run(command!, args, { env: { ...SANDBOX_RUNTIME_ENV }, cwd: dir, timeout: 30_000, maxBuffer: 1 << 20 });
    const out = JSON.parse(stdout) as Record<string, unknown>;

    expect(out["connect"]).not.toBe("ok");
    expect(connections).toBe(0);
    expect(out["interfaces"]).not.toEqual(expect.arrayContaining([expect.not.stringMatching(/^lo$/)]));

    expect(out["signalVictim"]).not.toBe("ok");
    expect(out["signalParent"]).not.toBe("ok");
    expect(victim.exitCode).toBeNull();
    expect(victim.signalCode).toBeNull();

    expect(out["writeTmp"]).not.toBe("ok");
    expect(out["writeCwd"]).not.toBe("ok");
    expect(out["shellWrite"]).not.toBe("ok");
    expect(existsSync(scratch)).toBe(false);
    expect(existsSync(`${scratch}.sh`)).toBe(false);
    expect(existsSync(join(dir, "planted"))).toBe(false);

    expect(out["readSecret"]).toBe("EACCES");
    expect(out["uid"]).not.toBe(0);
    // A pid namespace of its own: it sees itself (pid 1) and whatever it started, never the worker.
    expect(out["processes"]).not.toContain(process.pid);
    expect(out["processes"]).not.toContain(victim.pid);
    expect(out["limits"]).toMatch(/Max core file size\s+0\s+0/);

    // Its address space is capped at a bare Node process plus MEMORY_MB: the allocations stop
    // there (give or take the malloc arenas the bare process had reserved when it was measured).
    expect(out["memoryStop"]).toBeDefined();
    expect(out["allocatedMb"] as number).toBeLessThanOrEqual(MEMORY_MB + 64);
  });

  it("refuses in os mode where a layer is missing, naming it, unless weak isolation was accepted", async () => {
    // A worker that is not root cannot give a sandbox a uid or namespaces of its own.
    const script = `
      import { prepareIsolation } from ${JSON.stringify(new URL("../../dist/sandbox/isolation.js", import.meta.url).href)};
      const quiet = { warn() {}, info() {}, child() { return quiet; } };
      const report = {};
      try { await prepareIsolation({ mode: "os", memoryMb: 128 }, [], quiet); report.os = "started"; } catch (e) { report.os = e.code + ": " + e.message; }
      const weak = await prepareIsolation({ mode: "weak", memoryMb: 128 }, [], quiet);
      report.weak = { layers: weak.layers, missing: weak.missing.map((m) => m.layer) };
      process.stdout.write(JSON.stringify(report));`;
    const { stdout } = await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "--input-type=module", "-e", script], { cwd: "/" });
    const report = JSON.parse(stdout) as { os: string; weak: { layers: string[]; missing: string[] } };
    expect(report.os).toMatch(/^SANDBOX_ISOLATION_UNAVAILABLE: .*user \(the worker is not root/);
    expect(report.os).toContain("FM_SANDBOX_ISOLATION=weak");
    expect(report.weak.missing).toEqual(expect.arrayContaining(["user", "namespaces", "read-only"]));
    expect(report.weak.layers).toEqual(expect.arrayContaining(["rlimits", "parent-death"]));
  });
});
