import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * The command prefix that makes the kernel SIGKILL a sandbox when the worker that started it
 * dies, however it dies: util-linux `setpriv --pdeathsig KILL` (Linux's PR_SET_PDEATHSIG, kept
 * across the exec into node). Node has no API for it, and nothing inside the sandbox can do it
 * instead: a sandbox spinning in a synchronous loop never runs its own IPC-disconnect handler,
 * and its hard-TTL timer lives in the worker. Without this a SIGKILLed worker (OOM killer, a
 * forced pod stop outside a PID namespace) left such a sandbox spinning as an orphan.
 *
 * Empty where setpriv is missing (macOS, minimal images): the sandbox then relies on its
 * disconnect handler and the worker's exit hook, which cover every exit but SIGKILL.
 */
export function parentDeathLauncher(): string[] {
  launcher ??= findSetpriv();
  return launcher === null ? [] : [launcher, "--pdeathsig", "KILL"];
}

let launcher: string | null | undefined;

function findSetpriv(): string | null {
  if (process.platform !== "linux") return null;
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin", "/bin", "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, "setpriv");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
