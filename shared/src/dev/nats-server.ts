/**
 * Development and test launcher for a local `nats-server` taken from PATH.
 *
 * The server listens on a port the OS picks (`-p -1`) unless one is given, and the
 * launcher learns the real ports from the PID-named ports file
 * (`--ports_file_dir`, file `nats-server_<pid>.ports`), so servers started in
 * parallel never collide. Readiness is the ports file plus a NATS INFO greeting on
 * the client port, waited for against a deadline — never a fixed sleep.
 */
import { withParentDeath } from "./parent-death.js";
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

export const NATS_SERVER_INSTALL_HINT =
  "Install it with `apt-get install nats-server` (Debian/Ubuntu), or download a release " +
  "from https://github.com/nats-io/nats-server/releases and put `nats-server` on PATH.";

export interface StartNatsServerOptions {
  /** nats-server config file (`-c`). Flags given below override its values. */
  configFile?: string;
  /**
   * Enable JetStream (`-js`). Without a configFile the default is true and a temp
   * store dir is used. With a configFile the config decides unless this is set to true.
   */
  jetstream?: boolean;
  /** JetStream store dir (`-sd`); nats-server keeps its data in `<storeDir>/jetstream`. */
  storeDir?: string;
  /** Client port (`-p`). Default: a free port picked by the OS (`-1`), or the config's. */
  port?: number;
  /** HTTP monitoring port (`-m`); -1 for a free one. Default: none, or the config's. */
  httpPort?: number;
  /**
   * Values for variables the config file defines at its top level (`HUB_LEAF_PORT: 7422`).
   * nats-server 2.9 lets a variable defined in the file win over the environment, so the
   * launcher starts from a temporary copy with those definition lines replaced. Every name
   * must be defined in the file: a typo fails instead of being ignored.
   */
  vars?: Record<string, string | number | string[]>;
  /** Extra nats-server arguments, appended last. */
  args?: string[];
  /** Extra environment for the server process (merged over process.env; PATH here is used to find the binary). */
  env?: Record<string, string>;
  /** Working directory of the server process (relative paths in a config resolve against it). */
  cwd?: string;
  /** Binary to run; default FM_NATS_SERVER, else `nats-server` looked up on PATH. */
  bin?: string;
  /** How long to wait for the server to be ready. Default 15000 ms. */
  startTimeoutMs?: number;
  /**
   * Own process group: a Ctrl-C in the terminal does not reach the server, so its owner can
   * stop it last, after the processes that use it have drained.
   */
  detached?: boolean;
}

/** The parsed ports file: URLs per listener kind (nats, monitoring, cluster, leafnode, websocket...). */
export type NatsServerPorts = Partial<Record<"nats" | "monitoring" | "cluster" | "profile" | "websocket" | "leafnode", string[]>> &
  Record<string, string[] | undefined>;

export interface NatsExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NatsServerHandle {
  /** Client URL, e.g. `nats://127.0.0.1:40123`. Stable across restart(). */
  readonly url: string;
  readonly port: number;
  /** PID of the current process (changes on restart()). */
  readonly pid: number;
  /** JetStream store dir passed with `-sd`, or undefined when the config decides / JetStream is off. */
  readonly storeDir: string | undefined;
  /** Every listener the server reported in its ports file. */
  readonly ports: NatsServerPorts;
  /** True while the current process has not exited. */
  readonly running: boolean;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. Removes the temp dirs the launcher created. Idempotent. */
  stop(): Promise<void>;
  /** Send a signal to the current process (default SIGKILL) without waiting; see waitForExit(). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the current process exits (rejects after timeoutMs, default 10000). */
  waitForExit(timeoutMs?: number): Promise<NatsExit>;
  /** Stop the current process if still running (SIGTERM, then SIGKILL) and start again on the same port and store dir. */
  restart(): Promise<void>;
  /** Everything the server printed so far (all incarnations, capped to the last ~2 MB). */
  logs(): string;
}

const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 25;
const LOG_CAP = 2 * 1024 * 1024;

/** Absolute path of `nats-server` on PATH (or of `bin`), or undefined when there is none. */
export function findNatsServer(bin = "nats-server", pathEnv = process.env["PATH"] ?? ""): string | undefined {
  if (bin.includes("/")) return isExecutable(bin) ? resolve(bin) : undefined;
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, bin);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when a NATS server answers at `url` within `timeoutMs`: a TCP connect that
 * receives the server's `INFO` greeting. `url` may be a comma-separated list
 * (as NATS_URL allows); true when any entry answers.
 */
export async function isNatsReachable(url: string, timeoutMs = 1000): Promise<boolean> {
  const entries = url
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (entries.length === 0) return false;
  const results = await Promise.all(entries.map((entry) => probeOne(entry, timeoutMs)));
  return results.some(Boolean);
}

function probeOne(entry: string, timeoutMs: number): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const u = new URL(entry.includes("://") ? entry : `nats://${entry}`);
    host = u.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1";
    port = u.port === "" ? 4222 : Number(u.port);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise<boolean>((resolvePromise) => {
    let greeting = "";
    const socket = netConnect({ host, port });
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise(ok);
    };
    const timer = setTimeout(() => finish(false), Math.max(1, timeoutMs));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      greeting += chunk;
      if (greeting.length >= 5) finish(greeting.startsWith("INFO"));
    });
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
  });
}

// Children still alive when this process exits are killed, so a crashed test run
// does not leave servers behind.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of liveChildren) {
        try {
          c.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  }
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
}

interface Incarnation {
  child: ChildProcess;
  pid: number;
  exit: Promise<NatsExit>;
  exited: boolean;
}

/** Spawn nats-server from PATH and resolve once it accepts clients. */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const pathEnv = opts.env?.["PATH"] ?? process.env["PATH"] ?? "";
  // FM_NATS_SERVER picks the server binary the tests and the dev mesh run (CI runs the suite
  // on the current release and on Debian's 2.9.10 this way).
  const binName = opts.bin ?? (process.env["FM_NATS_SERVER"] || "nats-server");
  const bin = findNatsServer(binName, pathEnv);
  if (bin === undefined) {
    throw new Error(
      binName.includes("/")
        ? `nats-server binary ${binName} does not exist or is not executable. ${NATS_SERVER_INSTALL_HINT}`
        : `nats-server was not found on PATH. ${NATS_SERVER_INSTALL_HINT}`,
    );
  }

  const baseDir = await mkdtemp(join(tmpdir(), "fm-nats-"));
  const portsDir = join(baseDir, "ports");
  await mkdir(portsDir);

  let storeDir: string | undefined;
  let jetstreamFlag = false;
  if (opts.configFile === undefined) {
    jetstreamFlag = opts.jetstream ?? true;
    if (jetstreamFlag) storeDir = opts.storeDir ?? join(baseDir, "store");
  } else {
    jetstreamFlag = opts.jetstream === true;
    storeDir = opts.storeDir;
  }
  if (storeDir !== undefined) {
    storeDir = resolve(opts.cwd ?? process.cwd(), storeDir);
    await mkdir(storeDir, { recursive: true });
  }

  let configFile: string | undefined;
  try {
    configFile =
      opts.configFile === undefined
        ? undefined
        : await effectiveConfig(resolve(opts.cwd ?? process.cwd(), opts.configFile), storeDir !== undefined, opts.vars ?? {}, baseDir);
  } catch (err) {
    await rm(baseDir, { recursive: true, force: true });
    throw err;
  }

  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const env = { ...process.env, ...opts.env };

  let logBuffer = "";
  const appendLog = (text: string): void => {
    logBuffer += text;
    if (logBuffer.length > LOG_CAP) logBuffer = logBuffer.slice(logBuffer.length - LOG_CAP);
  };

  const buildArgs = (port: number | undefined, httpPort: number | undefined): string[] => {
    const args: string[] = [];
    if (configFile !== undefined) args.push("-c", configFile);
    else args.push("-a", "127.0.0.1");
    if (port !== undefined) args.push("-p", String(port));
    else if (configFile === undefined) args.push("-p", "-1");
    if (httpPort !== undefined) args.push("-m", String(httpPort));
    if (jetstreamFlag) args.push("-js");
    if (storeDir !== undefined) args.push("-sd", storeDir);
    args.push("--ports_file_dir", portsDir);
    args.push(...(opts.args ?? []));
    return args;
  };

  const launch = async (port: number | undefined, httpPort: number | undefined): Promise<{ inc: Incarnation; ports: NatsServerPorts }> => {
    const args = buildArgs(port, httpPort);
    // Ends with whoever started it, even when that process is SIGKILLed (a test run, flowmonkey dev).
    const [command, argv] = withParentDeath(bin, args);
    const child = spawn(command, argv, { cwd: opts.cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: opts.detached ?? false });
    const inc: Incarnation = {
      child,
      pid: -1,
      exited: false,
      exit: new Promise<NatsExit>((res) => {
        child.once("exit", (code, signal) => {
          inc.exited = true;
          res({ code, signal });
        });
      }),
    };
    child.on("error", (err) => appendLog(`[launcher] ${err.message}\n`));
    child.stdout?.setEncoding("utf8").on("data", appendLog);
    child.stderr?.setEncoding("utf8").on("data", appendLog);
    try {
      await new Promise<void>((res, rej) => {
        child.once("spawn", () => res());
        child.once("error", rej);
      });
    } catch (err) {
      throw new Error(`could not start ${bin}: ${(err as Error).message}. ${NATS_SERVER_INSTALL_HINT}`, { cause: err });
    }
    inc.pid = child.pid as number;
    const pid = inc.pid;
    track(child);

    try {
      const ports = await waitReady(inc, join(portsDir, `${basename(bin)}_${pid}.ports`), timeoutMs);
      return { inc, ports };
    } catch (err) {
      await terminate(inc);
      const tail = logBuffer.split("\n").slice(-30).join("\n");
      throw new Error(`${(err as Error).message}\ncommand: ${bin} ${args.join(" ")}\nserver output:\n${tail}`, { cause: err });
    }
  };

  let first: Awaited<ReturnType<typeof launch>>;
  try {
    first = await launch(opts.port, opts.httpPort);
  } catch (err) {
    await rm(baseDir, { recursive: true, force: true });
    throw err;
  }
  let current = first.inc;
  let ports = first.ports;
  const url = pickClientUrl(ports);
  const port = Number(new URL(url).port);
  const monitoringPort = portOf(ports["monitoring"]);
  let stopped = false;

  const handle: NatsServerHandle = {
    url,
    port,
    get pid() {
      return current.pid;
    },
    storeDir,
    get ports() {
      return ports;
    },
    get running() {
      return !current.exited;
    },
    async stop() {
      if (stopped) {
        await current.exit;
        return;
      }
      stopped = true;
      await terminate(current);
      await rm(baseDir, { recursive: true, force: true });
    },
    kill(signal: NodeJS.Signals = "SIGKILL") {
      if (!current.exited) current.child.kill(signal);
    },
    async waitForExit(waitMs = 10_000) {
      return withDeadline(current.exit, waitMs, `nats-server pid ${current.pid} did not exit within ${waitMs} ms`);
    },
    async restart() {
      if (stopped) throw new Error("nats-server handle was stopped; start a new one instead of restart()");
      await terminate(current);
      appendLog(`--- restart (previous pid ${current.pid}) ---\n`);
      const next = await launch(port, monitoringPort ?? opts.httpPort);
      current = next.inc;
      ports = next.ports;
    },
    logs() {
      return logBuffer;
    },
  };
  return handle;
}

/**
 * nats-server 2.9 refuses `-sd` when the config file also sets `store_dir`
 * ("Duplicate 'store_dir' configuration"). To let the flag win, use a copy of the
 * config with its store_dir lines commented out and relative includes made absolute.
 * Only the top file is rewritten; a store_dir set in an included file still conflicts.
 */
async function effectiveConfig(file: string, overrideStore: boolean, vars: Record<string, string | number | string[]>, baseDir: string): Promise<string> {
  const varNames = Object.keys(vars);
  if (!overrideStore && varNames.length === 0) return file;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read nats-server config ${file}: ${(err as Error).message}`, { cause: err });
  }
  const storeLine = /^(\s*)(store_dir|storedir)(\s*[:=]|\s+)/im;
  if (varNames.length === 0 && !storeLine.test(text)) return file;
  const dir = dirname(file);
  const seen = new Set<string>();
  const rewritten = text
    .split("\n")
    .map((line) => {
      const definition = /^([A-Za-z_][A-Za-z0-9_]*)\s*[:=]/.exec(line);
      if (definition && Object.hasOwn(vars, definition[1] as string)) {
        const name = definition[1] as string;
        seen.add(name);
        const value = vars[name] as string | number | string[];
        // JSON strings and arrays of strings are valid nats-server config values as they are.
        return `${name}: ${typeof value === "number" ? String(value) : JSON.stringify(value)}`;
      }
      if (overrideStore && storeLine.test(line)) return `# (store dir overridden by -sd) ${line}`;
      const inc = /^(\s*include\s+)(["']?)([^"'\s]+)\2(.*)$/i.exec(line);
      // nats-server joins an include path to the including file's directory even when it is
      // absolute, so the copy (in baseDir) names the original's includes relative to itself.
      if (inc && !isAbsolute(inc[3] as string)) return `${inc[1]}"${relative(baseDir, join(dir, inc[3] as string))}"${inc[4]}`;
      return line;
    })
    .join("\n");
  const missing = varNames.filter((name) => !seen.has(name));
  if (missing.length > 0) throw new Error(`nats-server config ${file} defines no variable ${missing.join(", ")} (vars must name top-level definitions)`);
  const copy = join(baseDir, "nats-server.conf");
  await writeFile(copy, rewritten);
  return copy;
}

async function waitReady(inc: Incarnation, portsFile: string, timeoutMs: number): Promise<NatsServerPorts> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = "ports file not written yet";
  while (Date.now() < deadline) {
    if (inc.exited) {
      const { code, signal } = await inc.exit;
      throw new Error(`nats-server exited before it was ready (code ${code}, signal ${signal})`);
    }
    let ports: NatsServerPorts | undefined;
    try {
      ports = JSON.parse(await readFile(portsFile, "utf8")) as NatsServerPorts;
    } catch (err) {
      lastProblem = `ports file ${portsFile}: ${(err as Error).message}`;
    }
    if (ports !== undefined) {
      const nats = ports["nats"];
      if (!Array.isArray(nats) || nats.length === 0) {
        lastProblem = `ports file ${portsFile} lists no client URL`;
      } else {
        const remaining = Math.max(1, Math.min(1000, deadline - Date.now()));
        const url = pickClientUrl(ports);
        if (await isNatsReachable(url, remaining)) return ports;
        lastProblem = `no NATS greeting from ${url}`;
      }
    }
    await delay(POLL_MS);
  }
  throw new Error(`nats-server was not ready within ${timeoutMs} ms (${lastProblem})`);
}

function pickClientUrl(ports: NatsServerPorts): string {
  const urls = ports["nats"] ?? [];
  const loopback = urls.find((u) => u.includes("://127.0.0.1:"));
  const chosen = loopback ?? urls[0];
  if (chosen === undefined) throw new Error("nats-server reported no client URL");
  const u = new URL(chosen);
  // A server bound to all interfaces reports every address; clients here use loopback.
  return loopback ?? (u.hostname === "0.0.0.0" || u.hostname === "[::]" ? `nats://127.0.0.1:${u.port}` : chosen);
}

function portOf(urls: string[] | undefined): number | undefined {
  const first = urls?.[0];
  if (first === undefined) return undefined;
  const p = Number(new URL(first).port);
  return Number.isFinite(p) && p > 0 ? p : undefined;
}

async function terminate(inc: Incarnation): Promise<void> {
  if (inc.exited) {
    await inc.exit;
    return;
  }
  inc.child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const graceful = await Promise.race([
    inc.exit.then(() => true),
    new Promise<boolean>((res) => {
      timer = setTimeout(() => res(false), STOP_GRACE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!graceful && !inc.exited) inc.child.kill("SIGKILL");
  await inc.exit;
}

function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
