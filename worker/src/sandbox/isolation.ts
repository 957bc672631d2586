import { FmError, type Logger } from "@flowmonkey/shared";
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";
import { tool } from "./launcher.js";
import { SANDBOX_RUNTIME_ENV } from "./sandbox-process.js";

/**
 * The operating system's side of the sandbox: the security boundary.
 *
 * A handler is assumed to own its sandbox process — a `node:vm` context is not a security
 * boundary, and Node 20's permission model does not cover the network, signals or every
 * write — so what stops it is the kernel. Each sandbox process is started through a chain of
 * util-linux tools (in Debian's base system and the images), each adding one layer:
 *
 * | layer         | how                                                    | stops a handler with `process` in hand from |
 * |---------------|--------------------------------------------------------|---------------------------------------------|
 * | `user`        | `setpriv --reuid/--regid` to a uid of its own, no groups, no capabilities, no_new_privs | signalling the worker or other sandboxes, reading the worker's files and `/proc/<pid>/environ`, gaining privileges |
 * | `namespaces`  | `unshare --net --pid --ipc --mount`                    | any network connection (no interface is up: not even loopback), seeing other processes (a fresh `/proc`), SysV IPC |
 * | `read-only`   | every mount re-mounted read-only in its mount namespace | writing or creating any file anywhere |
 * | `rlimits`     | `prlimit`: address space, file size 0, no core, 256 fds, 64 threads | exceeding its memory limit (ArrayBuffers included), writing bytes to a file, dumping core, exhausting fds or pids |
 * | `parent-death`| `setpriv --pdeathsig KILL`                             | outliving its worker (the kernel kills it) |
 * | `nice`        | `nice -n 10`                                           | starving the worker of CPU |
 *
 * `user`, `namespaces` and `read-only` need root (or CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN).
 * Where a layer cannot be had the worker refuses to start sandboxed handlers, naming the layer,
 * unless the operator accepted weaker isolation (`FM_SANDBOX_ISOLATION=weak`): then it applies
 * what it can and logs what is missing at every start.
 */
export type IsolationMode = "os" | "weak";

export type IsolationLayer = "user" | "namespaces" | "read-only" | "rlimits" | "parent-death" | "nice";

/** The layers `os` mode cannot go without (nice only lowers CPU priority: not a boundary). */
const REQUIRED_LAYERS: readonly IsolationLayer[] = ["user", "namespaces", "read-only", "rlimits", "parent-death"];

export interface IsolationSettings {
  mode: IsolationMode;
  /** What a sandbox may map beyond a bare Node process (heap, ArrayBuffers, code): its memory limit, MiB. */
  memoryMb: number;
}

export interface SandboxIsolation {
  readonly mode: IsolationMode;
  /** Layers every sandbox gets. */
  readonly layers: readonly IsolationLayer[];
  /** Layers this machine cannot give, and why. Empty in `os` mode (it refuses instead). */
  readonly missing: readonly { layer: IsolationLayer; why: string }[];
  /** The command prefix of one new sandbox process: each gets a uid of its own. */
  launcher(): string[];
}

/** How much lower than its worker a sandbox is scheduled (nice(1) increment). */
export const SANDBOX_NICENESS = 10;

// Sandbox uids: one per sandbox process, from a range no account uses (Debian's dynamic uids end
// at 59999, systemd's at 65519 — these start at 2^30). Each worker starts at a random point of
// the range, so sandboxes of two workers on one host almost never share a uid.
const UID_BASE = 1 << 30;
const UID_RANGE = 1 << 24;
// Threads and processes of one sandbox (its uid is its own): Node needs about a dozen threads.
const SANDBOX_MAX_TASKS = 64;
const SANDBOX_MAX_FDS = 256;

// Every mount of the sandbox's own mount namespace made read-only, then the rest of the chain.
// (`mount` is util-linux; a mount point that refuses, such as an already read-only one, is left.)
const READ_ONLY_MOUNTS = 'while read -r _ mp _; do mount -o remount,bind,ro "$mp" 2>/dev/null; done < /proc/self/mounts; exec "$@"';

// Run under the full chain once per worker: proves the chain works here and measures how much
// address space a bare sandbox maps, the base its memory limit is added to.
const PROBE = "const s=require('fs').readFileSync('/proc/self/status','utf8');process.stdout.write(JSON.stringify({uid:process.getuid(),ppid:process.ppid,vmKb:Number(/VmSize:\\s+(\\d+)/.exec(s)[1])}))";

const run = promisify(execFile);

/**
 * Works out which layers this machine gives, probes the full chain once, and returns the
 * launcher. Throws SANDBOX_ISOLATION_UNAVAILABLE in `os` mode when a required layer is missing.
 */
export async function prepareIsolation(settings: IsolationSettings, nodeArgs: string[], log: Logger): Promise<SandboxIsolation> {
  const missing: { layer: IsolationLayer; why: string }[] = [];
  const tools = { setpriv: tool("setpriv"), unshare: tool("unshare"), prlimit: tool("prlimit"), nice: tool("nice"), mount: tool("mount"), sh: tool("sh") };
  const linux = process.platform === "linux";
  const root = linux && process.geteuid?.() === 0;
  const lack = (layer: IsolationLayer, why: string) => missing.push({ layer, why });

  if (!linux) for (const layer of ["user", "namespaces", "read-only", "rlimits", "parent-death"] as const) lack(layer, `not Linux (${process.platform})`);
  else {
    if (!tools.setpriv) lack("parent-death", "setpriv (util-linux) is not installed");
    if (!root) lack("user", "the worker is not root: it cannot start sandboxes under a uid of their own");
    else if (!tools.setpriv) lack("user", "setpriv (util-linux) is not installed");
    if (!root) lack("namespaces", "the worker is not root: it cannot create network, pid and mount namespaces");
    else if (!tools.unshare) lack("namespaces", "unshare (util-linux) is not installed");
    if (!tools.mount || !tools.sh || missing.some((m) => m.layer === "namespaces")) lack("read-only", "needs a mount namespace, mount and sh");
    if (!tools.prlimit) lack("rlimits", "prlimit (util-linux) is not installed");
  }
  if (!tools.nice || process.platform === "win32") lack("nice", "nice is not installed");

  const has = (layer: IsolationLayer) => !missing.some((m) => m.layer === layer);
  let uid = randomInt(UID_RANGE);
  const chain = (addressSpaceKb: number | undefined, sandboxUid: number): string[] => [
    ...(has("parent-death") && has("namespaces") ? [tools.setpriv!, "--pdeathsig", "KILL"] : []),
    ...(has("namespaces") ? [tools.unshare!, "--net", "--pid", "--ipc", "--mount", "--fork", "--mount-proc", "--propagation", "private", "--"] : []),
    ...(has("read-only") ? [tools.sh!, "-c", READ_ONLY_MOUNTS, "sh"] : []),
    ...(has("rlimits")
      ? [
          tools.prlimit!,
          "--core=0",
          "--fsize=0",
          `--nofile=${SANDBOX_MAX_FDS}`,
          // RLIMIT_NPROC counts every process of the uid: only meaningful when the uid is the sandbox's own.
          ...(has("user") ? [`--nproc=${SANDBOX_MAX_TASKS}`] : []),
          ...(addressSpaceKb === undefined ? [] : [`--as=${addressSpaceKb * 1024}`]),
          "--",
        ]
      : []),
    ...(has("nice") ? [tools.nice!, "-n", String(SANDBOX_NICENESS)] : []),
    ...(has("user")
      ? [tools.setpriv!, `--reuid=${sandboxUid}`, `--regid=${sandboxUid}`, "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--pdeathsig", "KILL", "--"]
      : has("parent-death")
        ? [tools.setpriv!, "--pdeathsig", "KILL", "--"]
        : []),
  ];

  let addressSpaceKb: number | undefined;
  if (linux) {
    const [command, ...args] = [...chain(undefined, UID_BASE + uid), process.execPath, ...nodeArgs, "-e", PROBE];
    try {
      const { stdout } = await run(command!, args, { env: { ...SANDBOX_RUNTIME_ENV }, timeout: 10_000 });
      const probe = JSON.parse(stdout) as { uid: number; ppid: number; vmKb: number };
      if (has("user") && probe.uid !== UID_BASE + uid) lack("user", `the probe ran as uid ${probe.uid}, not its own`);
      if (has("namespaces") && probe.ppid !== 0) lack("namespaces", "the probe could see its parent: no pid namespace");
      // The limit: what a bare sandbox maps, plus its memory allowance.
      addressSpaceKb = probe.vmKb + settings.memoryMb * 1024;
    } catch (err) {
      // One tool of the chain refused (a container without CAP_SYS_ADMIN, say): nothing below the probe holds.
      const why = `the sandbox launcher failed on this machine: ${String((err as { stderr?: unknown }).stderr || (err as Error).message).trim().slice(0, 300)}`;
      for (const layer of ["user", "namespaces", "read-only"] as const) if (has(layer)) lack(layer, why);
    }
  }
  if (has("rlimits") && addressSpaceKb === undefined) lack("rlimits", "the address-space limit could not be measured (the probe failed)");

  const absent = missing.filter((m) => REQUIRED_LAYERS.includes(m.layer));
  if (settings.mode === "os" && absent.length > 0) {
    throw new FmError(
      "SANDBOX_ISOLATION_UNAVAILABLE",
      `sandboxed handlers need OS isolation this machine cannot give: ${absent.map((m) => `${m.layer} (${m.why})`).join("; ")}. ` +
        "Run the worker as root on Linux with util-linux, or set FM_SANDBOX_ISOLATION=weak to accept weaker isolation.",
    );
  }
  const layers = (["user", "namespaces", "read-only", "rlimits", "parent-death", "nice"] as const).filter(has);
  if (missing.length > 0) log.warn({ layers, missing }, "sandbox isolation is weaker than it should be: these layers are missing");
  else log.info({ layers, addressSpaceMb: Math.round((addressSpaceKb ?? 0) / 1024) }, "sandbox isolation ready");

  return {
    mode: settings.mode,
    layers,
    missing,
    launcher() {
      uid = (uid + 1) % UID_RANGE;
      return chain(addressSpaceKb, UID_BASE + uid);
    },
  };
}
