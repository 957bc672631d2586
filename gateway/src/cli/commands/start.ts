import { readFile } from "node:fs/promises";
import { EXIT, FlowStart, TERMINAL_STATUSES, toError } from "@flowmonkey/shared";
import { parseArg, parseCommand, tokenArg, UsageError } from "../args.js";
import { followExecution } from "../follow.js";
import { printHelp, type Output } from "../output.js";
import { executionHeadline } from "../render.js";
import { withSession } from "../session.js";

export const startUsage =
  "start <flowId> [--input <json> | --input @file.json] [--execution-id <id>] [--tenant <id>] [--priority high|normal|low] [--region <region>] [--labels k=v,...] [--wait] [--json]";

/** `flowmonkey start`: fm.api.flows.start, optionally waiting for the execution to end. */
export async function startCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: startUsage,
    options: {
      input: { type: "string", short: "i" },
      "execution-id": { type: "string" },
      tenant: { type: "string" },
      priority: { type: "string" },
      region: { type: "string" },
      labels: { type: "string" },
      wait: { type: "boolean", short: "w" },
    },
    positionals: { min: 1, max: 1 },
  });
  if (cmd === "help") return help(out);
  const flowId = tokenArg(cmd.positionals[0], "flowId");
  const input = await readInput(cmd.string("input"));
  const executionId = cmd.string("execution-id");
  const tenantId = cmd.string("tenant");
  const priority = cmd.string("priority");
  const region = cmd.string("region");
  const labels = cmd.string("labels");
  // Validated here too, so a typo is a usage error before anything is sent.
  const start = parseArg(
    FlowStart,
    {
      input,
      ...(executionId ? { executionId } : {}),
      ...(tenantId ? { tenantId } : {}),
      ...(priority ? { priority } : {}),
      ...(region ? { region } : {}),
      ...(labels !== undefined ? { labels: parseLabels(labels) } : {}),
    },
    "start request",
  );

  return withSession(cmd.config, async (session) => {
    const reply = await session.api.start(flowId, start);
    if (!cmd.boolean("wait")) {
      out.result(`started ${flowId}: ${reply.executionId}${reply.created ? "" : " (already existed)"}`, reply);
      return EXIT.ok;
    }
    out.info(`started ${flowId}: ${reply.executionId}; waiting for it to finish…`);
    const view = await followExecution(session, reply.executionId, () => undefined);
    const ok = view.status === "completed";
    const detail = ok ? `output: ${JSON.stringify(view.output ?? null)}` : `error: ${view.error?.code ?? view.status}: ${view.error?.message ?? ""}`;
    out.result([executionHeadline(view), detail], view);
    return ok || !TERMINAL_STATUSES.includes(view.status) ? EXIT.ok : EXIT.failed;
  });
}

/** `--labels team=ops,env=prod`: labels the execution carries (and lists can filter on). */
function parseLabels(raw: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of raw.split(",").filter((p) => p.trim() !== "")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--labels ${raw}: expected key=value pairs separated by commas, got "${pair}"`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}

async function readInput(raw: string | undefined): Promise<unknown> {
  if (raw === undefined) return {};
  let text = raw;
  if (raw.startsWith("@")) {
    try {
      text = await readFile(raw.slice(1), "utf8");
    } catch (cause) {
      throw new UsageError(`--input ${raw}: cannot read ${raw.slice(1)}: ${toError(cause).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new UsageError(`--input is not valid JSON: ${toError(cause).message}`, "INVALID_JSON");
  }
}

function help(out: Output): number {
  return printHelp(out, startUsage, [
    "Starts a flow through the engine's API and prints the execution id.",
    "  --input, -i        the flow's input as JSON, or @file.json",
    "  --execution-id     your own id, making the start idempotent",
    "  --tenant           the tenant it runs for (caps, fairness, usage, secrets)",
    "  --priority         high, normal or low (default: the flow's)",
    "  --region           where its steps run unless a step says otherwise",
    "  --labels k=v,...   labels the execution carries",
    "  --wait, -w         follow the execution and exit 1 unless it completes",
  ]);
}
