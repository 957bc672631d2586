import { createNames, EXIT, listWorkers, silentLogger } from "@flowmonkey/shared";
import { z } from "zod";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { workerLines } from "../render.js";
import { withSession } from "../session.js";

export const workersUsage = "workers [--region <region>] [--handler <handler>] [--json]";

const Filters = z.object({ region: z.string().min(1).max(64).optional(), handler: z.string().min(1).max(128).optional() });

/** `flowmonkey workers`: live workers from the registry bucket (entries of dead workers expire). */
export async function workersCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: workersUsage, options: { region: { type: "string" }, handler: { type: "string" } } });
  if (cmd === "help") {
    return printHelp(out, workersUsage, [
      "Lists running workers from the fm_workers bucket: region, handlers, tasks in flight of their",
      "concurrency (as of their last refresh, every 10 s), version, host and start time.",
      "  --region, --handler  only workers of that region, or serving that handler",
    ]);
  }
  const filters = parseArg(Filters, { region: cmd.string("region"), handler: cmd.string("handler") }, "options");
  return withSession(cmd.config, async ({ nc }) => {
    const { workers } = await listWorkers(nc, createNames(cmd.config.prefix), silentLogger());
    const shown = workers.filter((w) => (!filters.region || w.region === filters.region) && (!filters.handler || w.handlers.includes(filters.handler)));
    out.result(workerLines(shown, out.table), { workers: shown });
    return EXIT.ok;
  });
}
