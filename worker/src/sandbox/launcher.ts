import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * The command prefix a sandbox is started through: each part is an OS guarantee Node has no
 * API for, used where the tool exists (both are in Debian's base system and the images).
 *
 * - `nice -n SANDBOX_NICENESS`: a sandbox spinning on a core until its hard TTL competes with
 *   its worker (heartbeats, result publishing, other tasks) at a lower priority, so a hostile
 *   handler slows only itself and other sandboxes.
 * - `setpriv --pdeathsig KILL` (Linux's PR_SET_PDEATHSIG, kept across the exec into node): the
 *   kernel SIGKILLs the sandbox when the worker dies, however it dies. Nothing inside the sandbox
 *   can do this instead: one spinning in a synchronous loop never runs its IPC-disconnect
 *   handler, and its hard-TTL timer lives in the worker. Without it a SIGKILLed worker (OOM
 *   killer, a forced stop outside a PID namespace) left such a sandbox spinning as an orphan.
 *
 * Where setpriv is missing (macOS, minimal images) the sandbox relies on its disconnect handler
 * and the worker's exit hook, which cover every end of the worker but SIGKILL.
 */
export function sandboxLauncher(): string[] {
  return [...lowPriorityLauncher(), ...parentDeathLauncher()];
}

/** How much lower than its worker a sandbox is scheduled (nice(1) increment). */
export const SANDBOX_NICENESS = 10;

export function parentDeathLauncher(): string[] {
  const setpriv = process.platform === "linux" ? tool("setpriv") : null;
  return setpriv === null ? [] : [setpriv, "--pdeathsig", "KILL"];
}

export function lowPriorityLauncher(): string[] {
  const nice = process.platform === "win32" ? null : tool("nice");
  return nice === null ? [] : [nice, "-n", String(SANDBOX_NICENESS)];
}

const found = new Map<string, string | null>();

/** An executable on PATH (or the system directories), looked up once per process. */
function tool(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin", "/bin", "/usr/sbin", "/sbin"];
  let path: string | null = null;
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      path = join(dir, name);
      break;
    } catch {
      // not here
    }
  }
  found.set(name, path);
  return path;
}
