/**
 * A binary of the mesh as a child process — a worker of any language (the Python and Go SDKs',
 * the TypeScript one's dist/main.js) or an engine — resolved once it prints its `ready` line
 * (default `worker started`; an engine logs `"engine started"`); rejected when it exits first
 * or stays silent for `timeoutMs`.
 */
import { spawn, type ChildProcess } from "node:child_process";

export function startProcessUntilReady(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  { ready = "worker started", timeoutMs = 20_000, started }: { ready?: string; timeoutMs?: number; started?: (child: ChildProcess) => void } = {},
): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  // Known to the caller before it is ready, so that its cleanup ends it whatever happens.
  started?.(child);
  let output = "";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`${cmd} did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) {
        clearTimeout(timer);
        ok(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${cmd} exited with ${code}:\n${output}`));
    });
  });
}
