import { accessSync, constants } from "node:fs";

let setpriv: string | null | undefined;

/**
 * `command args` started so that the kernel sends it `signal` when the process that starts it
 * dies, however it dies (SIGKILL included): `setpriv --pdeathsig` (util-linux; Linux's
 * PR_SET_PDEATHSIG, kept across the exec). The dev mesh's engine, gateway, workers and
 * nats-server, and the test suites' servers, are started this way, so a `flowmonkey dev` or a
 * test run killed with SIGKILL leaves nothing running. Where setpriv is missing (macOS) the
 * command is returned as is and the caller's own exit hook is the only cleanup.
 */
export function withParentDeath(command: string, args: readonly string[], signal: "TERM" | "KILL" = "TERM"): [string, string[]] {
  if (setpriv === undefined) setpriv = process.platform === "linux" ? findSetpriv() : null;
  return setpriv === null ? [command, [...args]] : [setpriv, ["--pdeathsig", signal, "--", command, ...args]];
}

function findSetpriv(): string | null {
  for (const path of ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"]) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return null;
}
