import { EXIT, QueuePauseRequest, QueueResumeRequest } from "@flowmonkey/shared";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const queuesPauseUsage = "queues pause <region> <handler> [--reason <text>] [--json]";
export const queuesResumeUsage = "queues resume <region> <handler> [--json]";

/** `flowmonkey queues pause`: the engine parks the lane's new tasks until it is resumed. */
export async function queuesPauseCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: queuesPauseUsage, options: { reason: { type: "string" } }, positionals: { min: 2, max: 2 } });
  if (cmd === "help") {
    return printHelp(out, queuesPauseUsage, [
      "Pauses a lane (<region>/<handler>, every priority): the engine parks its new tasks in its database",
      "instead of publishing them. Tasks already queued or running are not touched. Every engine replica",
      "honours the pause within a second. `flowmonkey queues resume` publishes the parked tasks.",
    ]);
  }
  const [region, handler] = cmd.positionals;
  const reason = cmd.string("reason");
  const request = parseArg(QueuePauseRequest, { region, handler, ...(reason ? { reason } : {}) }, "arguments");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.pauseQueue(request);
    out.result(`paused ${reply.lane}: its new tasks wait in the engine until \`flowmonkey queues resume ${request.region} ${request.handler}\``, reply);
    return EXIT.ok;
  });
}

/** `flowmonkey queues resume`: publishes the lane's parked tasks and stops parking new ones. */
export async function queuesResumeCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: queuesResumeUsage, positionals: { min: 2, max: 2 } });
  if (cmd === "help") return printHelp(out, queuesResumeUsage, ["Resumes a paused lane; its parked tasks are published in the order they were parked."]);
  const [region, handler] = cmd.positionals;
  const request = parseArg(QueueResumeRequest, { region, handler }, "arguments");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.resumeQueue(request);
    out.result(reply.wasPaused ? `resumed ${reply.lane}: ${reply.released} parked task(s) published` : `${reply.lane} was not paused`, reply);
    return EXIT.ok;
  });
}
