import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { Failure, natsEnv, TaskResult, parseWith, type Task } from "@flowmonkey/shared";
import { z } from "zod";
import type { CliConfig } from "./args.js";
import { devPaths } from "./dev/paths.js";

/** One line of the replay runner's stdout (worker/src/replay-main.ts). */
const RunnerLine = z.union([
  z.object({ effect: z.object({ kind: z.string(), subject: z.string().optional(), key: z.string().optional(), body: z.unknown().optional() }) }),
  z.object({ result: TaskResult }),
  z.object({ error: Failure.pick({ code: true, message: true }) }),
]);
export type RunnerEffect = Extract<z.infer<typeof RunnerLine>, { effect: unknown }>["effect"];
export type RunnerEnd = { result: TaskResult } | { error: { code: string; message: string } };

/**
 * Runs `task`'s handler in a child `node worker/dist/replay-main.js` (the CLI never imports worker
 * code), handing it this command's NATS settings so it can read an offloaded context and the
 * step's checkpoint. Effects are passed on as they arrive; resolves with the run's last line.
 */
export function runReplay(task: Task, config: CliConfig, onEffect: (effect: RunnerEffect) => void): Promise<RunnerEnd> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...natsEnv(config), FM_PREFIX: config.prefix };
  const child = spawn(process.execPath, [devPaths.replayRunner], { env, stdio: ["pipe", "pipe", "inherit"] });
  child.stdin.end(JSON.stringify({ task }));
  let end: RunnerEnd | undefined;
  let garbled: unknown;
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (text) => {
    if (!text.trim() || garbled) return;
    try {
      const line = parseWith(RunnerLine, JSON.parse(text) as unknown, "replay runner output");
      if ("effect" in line) onEffect(line.effect);
      else end = line;
    } catch (thrown) {
      // Reported once the child is gone, so it never outlives this command.
      garbled = thrown;
    }
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      if (garbled) reject(garbled);
      else if (end) resolve(end);
      else reject(new Error(`the replay runner ${devPaths.replayRunner} exited with code ${code} and no result (is the worker built? \`npm run build\`)`));
    });
  });
}
