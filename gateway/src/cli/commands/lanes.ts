import { EXIT } from "@flowmonkey/shared";
import { parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { lanesLines } from "../render.js";
import { withSession } from "../session.js";

export const lanesUsage = "lanes [--json]";

/** `flowmonkey lanes`: open or failing circuits and tenants' lanes with work in flight or queued. */
export async function lanesCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: lanesUsage });
  if (cmd === "help") {
    return printHelp(out, lanesUsage, [
      "Shows lanes (<region>/<handler>) that are not plainly healthy:",
      "  circuits  open, half-open, or counting infrastructure failures (FAILURES is failures/results",
      "            in the window); each engine replica keeps its own, this is the one that answered",
      "  tenants   tenants with attempts in flight or queued in the engine behind their cap",
      'Prints "all lanes healthy" when there is neither.',
    ]);
  }
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.lanes();
    out.result(lanesLines(reply, out.table), reply);
    return EXIT.ok;
  });
}
