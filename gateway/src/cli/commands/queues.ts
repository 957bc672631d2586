import { EXIT, QueuesRequest } from "@flowmonkey/shared";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { queueLines } from "../render.js";
import { withSession } from "../session.js";

export const queuesUsage = "queues [--region <region>] [--handler <handler>] [--json]";

/** `flowmonkey queues`: depth and ack-pending of every worker pool, per priority. */
export async function queuesCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: queuesUsage, options: { region: { type: "string" }, handler: { type: "string" } } });
  if (cmd === "help") {
    return printHelp(out, queuesUsage, [
      "Per pool (<region>/<handler>) and priority, read from the JetStream consumers now:",
      "  PENDING      tasks waiting for a worker",
      "  ACK PENDING  tasks delivered and not yet acknowledged (running, or lost until the heartbeat timeout)",
      "  REDELIVERED  of those, delivered more than once",
      "  IDLE PULLS   pull requests waiting at the server (idle workers)",
      "",
      "Every region's JetStream domain is read (the hub's and each leaf's); a region whose domain",
      "does not answer (its link is down) is listed as unreachable below the table.",
    ]);
  }
  const request = parseArg(QueuesRequest, { region: cmd.string("region"), handler: cmd.string("handler") }, "options");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.queues(request);
    out.result(queueLines(reply.queues, out.table, reply.regions), reply);
    return EXIT.ok;
  });
}
