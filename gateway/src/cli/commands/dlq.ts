import { DlqListRequest, DlqPurgeRequest, DlqReplayRequest, EXIT } from "@flowmonkey/shared";
import { z } from "zod";
import { parseArg, parseCommand, UsageError } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { deadTaskRows, replayLines } from "../render.js";
import { withSession } from "../session.js";

export const dlqLsUsage = "dlq ls [--region <region>] [--handler <handler>] [--all] [--limit <n>] [--json]";
export const dlqReplayUsage = "dlq replay <id...> [--json]";

/** The shared list request with `--limit` read from its string; bounds and defaults stay shared. */
const ListOptions = DlqListRequest.extend({ limit: z.coerce.number().optional().pipe(DlqListRequest.shape.limit) });

/** `flowmonkey dlq ls`: dead-lettered tasks still waiting for a decision (`--all`: replayed ones too). */
export async function dlqLsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: dlqLsUsage,
    options: { region: { type: "string" }, handler: { type: "string" }, all: { type: "boolean" }, limit: { type: "string" } },
  });
  if (cmd === "help") {
    return printHelp(out, dlqLsUsage, [
      "Lists dead-lettered tasks (retries or deliveries used up), newest first.",
      "  --region, --handler  only those of one region or handler",
      "  --all                include tasks already replayed",
      "  --limit              at most this many (1–500, default 100)",
    ]);
  }
  const all = cmd.boolean("all");
  const request = parseArg(
    ListOptions,
    { region: cmd.string("region"), handler: cmd.string("handler"), includeReplayed: all, limit: cmd.string("limit") },
    "options",
  );
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.listDeadTasks(request);
    if (reply.deadTasks.length === 0) {
      out.result(all ? "no dead-lettered tasks" : "no dead-lettered tasks waiting for a replay (--all shows replayed ones)", reply);
      return EXIT.ok;
    }
    const { headers, rows } = deadTaskRows(reply.deadTasks, { replayed: all });
    out.result(out.table(headers, rows), reply);
    return EXIT.ok;
  });
}

/** `flowmonkey dlq replay`: dispatches each dead task's step again; exit 1 when any id was refused. */
export async function dlqReplayCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: dlqReplayUsage, positionals: { min: 1 } });
  if (cmd === "help") {
    return printHelp(out, dlqReplayUsage, [
      "Replays dead-lettered tasks (ids from `dlq ls`, `<executionId>/<stepId>:<attempt>`) as new attempts.",
      "Exits 1 when any id was refused (unknown, already replayed, or its step has moved on).",
    ]);
  }
  const { ids } = parseArg(DlqReplayRequest, { ids: cmd.positionals }, "arguments");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.replayDeadTasks(ids);
    out.result(replayLines(reply), reply);
    return reply.refused.length > 0 ? EXIT.failed : EXIT.ok;
  });
}

export const dlqPurgeUsage = "dlq purge (--all | --region <region> [--handler <handler>]) [--include-replayed] [--json]";

/** `flowmonkey dlq purge`: deletes dead letters; `--all` is required to purge every pool, so a typo never does. */
export async function dlqPurgeCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: dlqPurgeUsage,
    options: { region: { type: "string" }, handler: { type: "string" }, all: { type: "boolean" }, "include-replayed": { type: "boolean" } },
  });
  if (cmd === "help") {
    return printHelp(out, dlqPurgeUsage, [
      "Deletes dead-lettered tasks waiting for a decision (and their copies in the FM_DLQ stream).",
      "Purged tasks can no longer be replayed; their steps stay failed (`flowmonkey retry` still works).",
      "  --all               every pool (required when no --region is given)",
      "  --include-replayed  also delete records of tasks already replayed",
    ]);
  }
  const region = cmd.string("region");
  const handler = cmd.string("handler");
  if (!cmd.boolean("all") && !region) throw new UsageError(`name a --region (and optionally --handler), or pass --all\nusage: flowmonkey ${dlqPurgeUsage}`);
  const request = parseArg(DlqPurgeRequest, { region, handler, includeReplayed: cmd.boolean("include-replayed") }, "options");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.purgeDeadTasks(request);
    out.result(`purged ${reply.purged} dead task(s)`, reply);
    return EXIT.ok;
  });
}
