import { Kvm } from "@nats-io/kv";
import { createNames, EXIT, listWorkerEntries, Region } from "@flowmonkey/shared";
import { z } from "zod";
import { parseArg, parseCommand } from "../args.js";
import type { Output } from "../output.js";
import { withSession } from "../session.js";

export const workersUsage = "workers [--region <region>] [--json]";

/** `flowmonkey workers`: the live worker registry (KV fm_workers): where each worker runs and what it serves. */
export async function workersCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: workersUsage, options: { region: { type: "string" } } });
  if (cmd === "help") {
    out.result(
      [`usage: flowmonkey ${workersUsage}`, "", "Lists live workers (entries expire 30 s after a worker stops refreshing them)."],
      { usage: workersUsage },
    );
    return EXIT.ok;
  }
  const { region } = parseArg(z.object({ region: Region.optional() }), { region: cmd.string("region") }, "option");
  return withSession(cmd.config, async ({ nc }) => {
    const all = await listWorkerEntries(await new Kvm(nc).open(createNames(cmd.config.prefix).buckets.workers));
    const workers = region ? all.filter((w) => w.region === region) : all;
    const rows = workers.map((w) => [w.region, w.workerId, w.handlers.join(","), w.capabilities.join(",") || "-", `${w.inFlight}/${w.concurrency}`, w.version, w.host]);
    out.result(workers.length ? out.table(["REGION", "WORKER", "HANDLERS", "CAPABILITIES", "IN FLIGHT", "VERSION", "HOST"], rows) : ["no live workers"], { workers });
    return EXIT.ok;
  });
}
