import { EXIT, ResumeToken } from "@flowmonkey/shared";
import { z } from "zod";
import { parseArg, parseCommand, UsageError } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const resumeUsage = "resume <resumeToken> [--payload <json>] [--json]";

/** `flowmonkey resume`: the step waiting on the token runs again with the payload. */
export async function resumeCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: resumeUsage, positionals: { min: 1, max: 1 }, options: { payload: { type: "string" } } });
  if (cmd === "help") {
    return printHelp(out, resumeUsage, [
      "Resumes the step waiting on a resume token (see `flowmonkey status`); its next run gets",
      "the payload (any JSON) as ctx.resume.payload. A token resumes once.",
    ]);
  }
  const token = parseArg(z.object({ resumeToken: ResumeToken }), { resumeToken: cmd.positionals[0] }, "argument").resumeToken;
  const raw = cmd.string("payload");
  let payload: unknown;
  if (raw !== undefined) {
    try {
      payload = JSON.parse(raw);
    } catch {
      throw new UsageError(`--payload is not JSON: ${raw.slice(0, 80)}`, "INVALID_JSON");
    }
  }
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.resume(token, payload);
    out.result(`resumed step ${reply.stepId} of ${reply.executionId} (${reply.status})`, reply);
    return EXIT.ok;
  });
}
