import { createNames, EXIT, listWorkers, silentLogger } from "@flowmonkey/shared";
import { parseCommand, tokenArg } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { executionHeadline, stepNotes, stepRows } from "../render.js";
import { withSession } from "../session.js";

export const statusUsage = "status <executionId> [--json]";

/** `flowmonkey status`: one execution and a table of its steps. */
export async function statusCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: statusUsage, positionals: { min: 1, max: 1 } });
  if (cmd === "help") return printHelp(out, statusUsage, [`Shows an execution and its steps.`]);
  const executionId = tokenArg(cmd.positionals[0], "executionId");
  return withSession(cmd.config, async ({ api, nc }) => {
    const view = await api.get(executionId);
    const { headers, rows } = stepRows(view);
    const lines = [executionHeadline(view), ...(view.parentExecutionId ? [`sub-flow of ${view.parentExecutionId} (step ${view.parentStepId})`] : []), "", ...out.table(headers, rows)];
    for (const s of view.steps) {
      if (s.childExecutionId) lines.push(`${s.stepId}: sub-flow ${s.flow} in execution ${s.childExecutionId}`);
      if (s.map) lines.push(`${s.stepId}: map, ${s.map.done}/${s.map.total} items done (${s.map.running} running, ${s.map.failed} failed)`);
    }
    // Only a dispatched step needs the registry: whether anyone can run it.
    const dispatched = view.steps.some((s) => s.status === "dispatched");
    const { workers } = dispatched ? await listWorkers(nc, createNames(cmd.config.prefix), silentLogger()) : { workers: [] };
    // A paused lane or an open circuit holds tasks back however many workers there are: say so.
    const lanes = dispatched ? await api.lanes() : undefined;
    const held = new Map<string, string>([
      ...(lanes?.circuits ?? []).filter((c) => c.state === "open").map((c): [string, string] => [c.lane, `circuit open${c.openUntil ? ` until ${c.openUntil}` : ""}`]),
      ...(lanes?.paused ?? []).map((p): [string, string] => [p.lane, `lane paused${p.reason ? ` (${p.reason})` : ""}; \`flowmonkey queues resume\` releases it`]),
    ]);
    const notes = stepNotes(view, (region, handler) => workers.some((w) => w.region === region && w.handlers.includes(handler)), (lane) => held.get(lane));
    if (notes.length > 0) lines.push("", ...notes);
    if (view.error) lines.push("", `error: ${view.error.code}: ${view.error.message}`);
    if (view.output !== undefined) lines.push("", `output: ${JSON.stringify(view.output)}`);
    out.result(lines, view);
    return EXIT.ok;
  });
}
