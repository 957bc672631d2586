import { EXIT, RetryStepRequest } from "@flowmonkey/shared";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const retryUsage = "retry <executionId> <stepId> [--json]";

/** `flowmonkey retry`: runs a failed step again; a failed execution runs again from it. */
export async function retryCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: retryUsage, positionals: { min: 2, max: 2 } });
  if (cmd === "help") {
    return printHelp(out, retryUsage, [
      "Dispatches a failed step again as a new attempt. A failed execution runs again: the steps its",
      "failure cancelled are pending again and run once the step succeeds.",
    ]);
  }
  const [executionId, stepId] = cmd.positionals;
  const request = parseArg(RetryStepRequest, { executionId, stepId }, "arguments");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.retryStep(request.executionId, request.stepId);
    out.result(`step ${reply.stepId} of ${reply.executionId} dispatched again (attempt ${reply.attempt}); execution ${reply.status}`, reply);
    return EXIT.ok;
  });
}
