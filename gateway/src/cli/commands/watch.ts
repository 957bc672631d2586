import { EXIT } from "@flowmonkey/shared";
import { parseCommand, tokenArg } from "../args.js";
import { followExecution } from "../follow.js";
import { printHelp, type Output } from "../output.js";
import { progressLines } from "../render.js";
import { withSession } from "../session.js";

export const watchUsage = "watch <executionId> [--json]";

/**
 * `flowmonkey watch`: live step progress bars until the execution ends. With --json, every
 * event is one JSON line (NDJSON) and the final execution is the last line.
 */
export async function watchCommand(argv: string[], out: Output, signal?: AbortSignal): Promise<number> {
  const cmd = parseCommand(argv, { usage: watchUsage, positionals: { min: 1, max: 1 } });
  if (cmd === "help") return printHelp(out, watchUsage, [`Follows an execution live until it ends.`]);
  const executionId = tokenArg(cmd.positionals[0], "executionId");
  return withSession(cmd.config, async (session) => {
    const view = await followExecution(
      session,
      executionId,
      (update) => {
        if (out.json) {
          if (update.kind === "exec") out.event("", { exec: update.event });
          else if (update.kind === "progress") out.event("", { progress: update.progress });
          return;
        }
        out.live(progressLines(update.state.view, update.state.progress));
      },
      signal,
    );
    out.endLive();
    if (out.json) out.event("", { execution: view });
    else if (view.status === "completed") out.info(`output: ${JSON.stringify(view.output ?? null)}`);
    else out.info(`${view.status}${view.error ? `: ${view.error.code}: ${view.error.message}` : ""}`);
    return view.status === "completed" ? EXIT.ok : EXIT.failed;
  });
}
