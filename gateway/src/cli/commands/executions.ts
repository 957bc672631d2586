import { EXIT, ExecutionListRequest, ExecutionRef, FlowListRequest } from "@flowmonkey/shared";
import { z } from "zod";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const cancelUsage = "cancel <executionId> [--json]";
export const lsUsage = "ls [--flow <flowId>] [--status <status>] [--tenant <id>] [--limit <n>] [--cursor <c>] [--json]";
export const flowsLsUsage = "flows ls [--flow <flowId>] [--json]";

/** `flowmonkey cancel`: cancels an execution (its running steps' tasks are cancelled, its children too). */
export async function cancelCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: cancelUsage, positionals: { min: 1, max: 1 } });
  if (cmd === "help") return printHelp(out, cancelUsage, ["Cancels an execution that has not ended; an ended one answers INVALID_STATE."]);
  const { executionId } = parseArg(ExecutionRef, { executionId: cmd.positionals[0] }, "arguments");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.cancel(executionId);
    out.result(`${reply.executionId} ${reply.status}`, reply);
    return EXIT.ok;
  });
}

const ListOptions = z.object({ limit: z.coerce.number().int().min(1).max(500).optional() });

/** `flowmonkey ls`: executions, newest first, filtered and paged (`nextCursor`). */
export async function lsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: lsUsage,
    options: { flow: { type: "string" }, status: { type: "string" }, tenant: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } },
  });
  if (cmd === "help") {
    return printHelp(out, lsUsage, [
      "Lists executions, newest first (50 by default, at most 500 a page).",
      "  --flow, --status, --tenant  only those; status is pending|running|waiting|completed|failed|cancelled",
      "  --cursor                    the next page: the cursor the previous page printed",
    ]);
  }
  const { limit } = parseArg(ListOptions, { limit: cmd.string("limit") }, "options");
  const request = parseArg(
    ExecutionListRequest,
    {
      ...(cmd.string("flow") === undefined ? {} : { flowId: cmd.string("flow") }),
      ...(cmd.string("status") === undefined ? {} : { status: cmd.string("status") }),
      ...(cmd.string("tenant") === undefined ? {} : { tenantId: cmd.string("tenant") }),
      ...(limit === undefined ? {} : { limit }),
      ...(cmd.string("cursor") === undefined ? {} : { cursor: cmd.string("cursor") }),
    },
    "options",
  );
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.list(request);
    const lines =
      reply.executions.length === 0
        ? ["no executions"]
        : out.table(
            ["EXECUTION", "FLOW", "STATUS", "TENANT", "CREATED", "ENDED"],
            reply.executions.map((e) => [e.id, `${e.flowId} v${e.flowVersion}`, e.status, e.tenantId ?? "-", e.createdAt, e.completedAt ?? "-"]),
          );
    out.result(reply.nextCursor ? [...lines, `more: --cursor ${reply.nextCursor}`] : lines, reply);
    return EXIT.ok;
  });
}

/** `flowmonkey flows ls`: registered flows, each at its latest version. */
export async function flowsLsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: flowsLsUsage, options: { flow: { type: "string" } } });
  if (cmd === "help") return printHelp(out, flowsLsUsage, ["Lists registered flows (latest version of each); --flow shows every version of one."]);
  const request = parseArg(FlowListRequest, cmd.string("flow") === undefined ? {} : { flowId: cmd.string("flow") }, "options");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.listFlows(request.flowId);
    const lines =
      reply.flows.length === 0
        ? ["no flows registered"]
        : out.table(
            ["FLOW", "VERSION", "LABEL", "NAME", "STEPS", "REGISTERED"],
            reply.flows.map((f) => [f.flowId, String(f.version), f.label ?? "-", f.name ?? "-", String(f.steps), f.createdAt]),
          );
    out.result(lines, reply);
    return EXIT.ok;
  });
}
