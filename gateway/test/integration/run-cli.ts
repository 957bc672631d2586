import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The built `flowmonkey` CLI. */
export const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a child process against one mesh (its NATS URL and prefix), never rejecting. */
/** `env`: more environment for the child (NATS_USER and NATS_PASSWORD against a server with users). */
export interface CliTarget {
  natsUrl: string;
  prefix: string;
  env?: Record<string, string>;
}

export function runCli(mesh: CliTarget, ...args: string[]): Promise<CliRun> {
  return runCliWithInput(mesh, undefined, ...args);
}

/** runCli with `stdin` written to the child's standard input (then closed). */
export function runCliWithInput(mesh: CliTarget, stdin: string | undefined, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, NATS_URL: mesh.natsUrl, FM_PREFIX: mesh.prefix, ...mesh.env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(stdin ?? "");
  });
}
