/**
 * A worker binary of any language as a child process (the Python and Go SDKs' workers, the
 * TypeScript one's dist/main.js): started with the mesh's NATS URL and prefix, ready once it
 * prints `worker started`.
 */
import { spawn, type ChildProcess } from "node:child_process";

export function startWorkerProcess(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  { timeoutMs = 20_000 }: { timeoutMs?: number } = {},
): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`${cmd} did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("worker started")) {
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
