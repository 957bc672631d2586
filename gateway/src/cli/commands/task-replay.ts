import { EXIT, FmError, isErrorCode, TaskGetRequest } from "@flowmonkey/shared";
import { parseArg, parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { runReplay, type RunnerEffect } from "../replay-runner.js";
import { withSession } from "../session.js";

export const taskReplayUsage = "task replay <executionId>/<stepId> [--attempt N] [--json]";

const SECRETS_NOTE = "secrets: none — sealed secrets open only on the pool's workers, so a handler that needs some sees none here";

/**
 * `flowmonkey task replay`: fetches one attempt of a step as it was dispatched and runs its
 * handler on this machine, with the worker's own runner. Nothing reaches the mesh: no result
 * is published, progress and events are printed, checkpoint writes stay in memory.
 */
export async function taskReplayCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: taskReplayUsage, options: { attempt: { type: "string" } }, positionals: { min: 1, max: 1 } });
  if (cmd === "help") {
    return printHelp(out, taskReplayUsage, [
      "Runs a step's handler locally with the input and context it was dispatched with (default: its latest",
      "attempt; a dead-lettered attempt replays the task exactly as it was queued) and prints the outcome.",
      "Dry run: progress and events are printed, not published; checkpoints are read from the mesh but",
      "writes stay in memory; no result is sent. The task's sealed secrets are removed: a handler that",
      "needs secrets sees none. Built-in handlers only (handler bundles are not loaded).",
      "Exit 0 when the handler succeeds (or asks to wait), 1 when it fails.",
    ]);
  }
  const attempt = cmd.string("attempt");
  const request = parseArg(
    TaskGetRequest,
    { taskId: cmd.positionals[0], ...(attempt === undefined ? {} : { attempt: Number(attempt) }) },
    "arguments",
  );
  const { task, source, vaultRemoved } = await withSession(cmd.config, ({ api }) => api.getTask(request.taskId, request.attempt));
  out.info(`replaying ${task.taskId} attempt ${task.attempt} (${task.handler.type}, ${source === "dead-letter" ? "the dead-lettered task" : "rebuilt from the execution"})`);
  out.info(vaultRemoved.length > 0 ? `${SECRETS_NOTE} (removed: ${vaultRemoved.join(", ")})` : SECRETS_NOTE);

  const end = await runReplay(task, cmd.config, (effect) => out.event(describeEffect(effect), { effect }));
  if ("error" in end) {
    throw new FmError(isErrorCode(end.error.code) ? end.error.code : "INTERNAL", end.error.message);
  }
  const { result } = end;
  const data = { taskId: task.taskId, attempt: task.attempt, source, vaultRemoved, secrets: SECRETS_NOTE, result };
  switch (result.outcome) {
    case "success":
      out.result(`success: ${JSON.stringify(result.output)}`, data);
      return EXIT.ok;
    case "wait":
      out.result(`wait: ${JSON.stringify(result.wait)}`, data);
      return EXIT.ok;
    default:
      out.result(`${result.outcome}: ${result.failure.code}: ${result.failure.message}`, data);
      return EXIT.failed;
  }
}

function describeEffect(effect: RunnerEffect): string {
  if (effect.kind === "progress" || effect.kind === "event") return `(dry run) ${effect.kind} ${effect.subject ?? ""} ${JSON.stringify(effect.body)}`;
  return `(dry run, in memory) ${effect.kind} ${effect.key ?? ""}`;
}
