import { EXIT, loadFlowFile, type FlowDefinition } from "@flowmonkey/shared";
import { parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const flowsPushUsage = "flows push <file...> [--json]";

/**
 * `flowmonkey flows push`: every file is validated locally first (schema, graph, cycles), so a
 * bad file is reported with its path and field before anything is registered.
 */
export async function flowsPushCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: flowsPushUsage, positionals: { min: 1 } });
  if (cmd === "help") return printHelp(out, flowsPushUsage, [`Validates flow files (.yaml/.yml/.json) and registers them.`]);
  const definitions: Array<{ file: string; definition: FlowDefinition }> = [];
  for (const file of cmd.positionals) definitions.push({ file, definition: await loadFlowFile(file) });

  return withSession(cmd.config, async ({ api }) => {
    const results = [];
    for (const { file, definition } of definitions) {
      const reply = await api.putFlow(definition);
      results.push({ file, ...reply });
      out.info(`${file}: ${reply.flowId} v${reply.version} ${reply.created ? "registered" : "unchanged"}`);
      for (const warning of reply.warnings ?? []) out.info(`  warning: ${warning}`);
    }
    if (out.json) out.result("", { flows: results });
    return EXIT.ok;
  });
}
