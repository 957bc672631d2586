import { EXIT, UsageRequest } from "@flowmonkey/shared";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { usageLines } from "../render.js";
import { withSession } from "../session.js";

export const usageUsage = "usage [--tenant <tenantId>] [--from <iso time>] [--to <iso time>] [--json]";

/** `flowmonkey usage`: active compute and paused time per tenant and pool tier. */
export async function usageCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: usageUsage, options: { tenant: { type: "string" }, from: { type: "string" }, to: { type: "string" } } });
  if (cmd === "help") {
    return printHelp(out, usageUsage, [
      "Task attempts that ended in the period (default: the last 30 days), per tenant and pool tier:",
      "  ACTIVE  the handlers' run time as their workers measured it (what compute is billed on)",
      "  PAUSED  the time steps then spent parked on a wait or pause (not compute)",
    ]);
  }
  const request = parseArg(UsageRequest, { tenantId: cmd.string("tenant"), from: cmd.string("from"), to: cmd.string("to") }, "options");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.usage(request);
    out.result(usageLines(reply, out.table), reply);
    return EXIT.ok;
  });
}
