#!/usr/bin/env node
import { ConfigError, EXIT, isFmError, toError } from "@flowmonkey/shared";
import { configUsage, UsageError } from "./args.js";
import { devCommand, devUsage } from "./commands/dev.js";
import { dlqLsCommand, dlqLsUsage, dlqPurgeCommand, dlqPurgeUsage, dlqReplayCommand, dlqReplayUsage } from "./commands/dlq.js";
import { retryCommand, retryUsage } from "./commands/retry.js";
import { cancelCommand, cancelUsage, flowsLsCommand, flowsLsUsage, lsCommand, lsUsage } from "./commands/executions.js";
import { flowsPushCommand, flowsPushUsage } from "./commands/flows-push.js";
import { handlerBuildCommand, handlerBuildUsage, handlerPublishCommand, handlerPublishUsage } from "./commands/handler.js";
import { lanesCommand, lanesUsage } from "./commands/lanes.js";
import { natsInitCommand, natsInitUsage } from "./commands/nats-init.js";
import { natsCertsCommand, natsCertsUsage } from "./commands/nats-certs.js";
import { resumeCommand, resumeUsage } from "./commands/resume.js";
import {
  secretsKeygenCommand,
  secretsKeygenUsage,
  secretsLsCommand,
  secretsLsUsage,
  secretsPutCommand,
  secretsPutUsage,
  secretsRmCommand,
  secretsRmUsage,
  secretsRotateCommand,
  secretsRotateUsage,
} from "./commands/secrets.js";
import { startCommand, startUsage } from "./commands/start.js";
import {
  schedulesGetCommand,
  schedulesGetUsage,
  schedulesLsCommand,
  schedulesLsUsage,
  schedulesPauseCommand,
  schedulesPauseUsage,
  schedulesPutCommand,
  schedulesPutUsage,
  schedulesResumeCommand,
  schedulesResumeUsage,
  schedulesRmCommand,
  schedulesRmUsage,
} from "./commands/schedules.js";
import { statusCommand, statusUsage } from "./commands/status.js";
import { taskReplayCommand, taskReplayUsage } from "./commands/task-replay.js";
import { usageCommand, usageUsage } from "./commands/usage.js";
import { watchCommand, watchUsage } from "./commands/watch.js";
import { workersCommand, workersUsage } from "./commands/workers.js";
import { queuesCommand, queuesUsage } from "./commands/queues.js";
import { queuesPauseCommand, queuesPauseUsage, queuesResumeCommand, queuesResumeUsage } from "./commands/queue-pause.js";
import { createOutput, flushAndExit, type Output } from "./output.js";

type Command = (argv: string[], out: Output) => Promise<number>;

/** Command words → handler; two-word commands (`flows push`) are keyed with a space. */
const COMMANDS: Record<string, { run: Command; usage: string }> = {
  dev: { run: devCommand, usage: devUsage },
  start: { run: startCommand, usage: startUsage },
  status: { run: statusCommand, usage: statusUsage },
  ls: { run: lsCommand, usage: lsUsage },
  cancel: { run: cancelCommand, usage: cancelUsage },
  watch: { run: (argv, out) => watchCommand(argv, out, interruptSignal()), usage: watchUsage },
  "flows push": { run: flowsPushCommand, usage: flowsPushUsage },
  "flows ls": { run: flowsLsCommand, usage: flowsLsUsage },
  "handler build": { run: handlerBuildCommand, usage: handlerBuildUsage },
  "handler publish": { run: handlerPublishCommand, usage: handlerPublishUsage },
  "nats init": { run: natsInitCommand, usage: natsInitUsage },
  "nats certs": { run: natsCertsCommand, usage: natsCertsUsage },
  "dlq ls": { run: dlqLsCommand, usage: dlqLsUsage },
  "dlq replay": { run: dlqReplayCommand, usage: dlqReplayUsage },
  "dlq purge": { run: dlqPurgeCommand, usage: dlqPurgeUsage },
  retry: { run: retryCommand, usage: retryUsage },
  "task replay": { run: taskReplayCommand, usage: taskReplayUsage },
  lanes: { run: lanesCommand, usage: lanesUsage },
  workers: { run: workersCommand, usage: workersUsage },
  queues: { run: queuesCommand, usage: queuesUsage },
  "queues pause": { run: queuesPauseCommand, usage: queuesPauseUsage },
  "queues resume": { run: queuesResumeCommand, usage: queuesResumeUsage },
  usage: { run: usageCommand, usage: usageUsage },
  resume: { run: resumeCommand, usage: resumeUsage },
  "secrets put": { run: (argv, out) => secretsPutCommand(argv, out), usage: secretsPutUsage },
  "secrets ls": { run: secretsLsCommand, usage: secretsLsUsage },
  "secrets keygen": { run: secretsKeygenCommand, usage: secretsKeygenUsage },
  "secrets rm": { run: secretsRmCommand, usage: secretsRmUsage },
  "secrets rotate": { run: secretsRotateCommand, usage: secretsRotateUsage },
  "schedules put": { run: schedulesPutCommand, usage: schedulesPutUsage },
  "schedules ls": { run: schedulesLsCommand, usage: schedulesLsUsage },
  "schedules get": { run: schedulesGetCommand, usage: schedulesGetUsage },
  "schedules rm": { run: schedulesRmCommand, usage: schedulesRmUsage },
  "schedules pause": { run: schedulesPauseCommand, usage: schedulesPauseUsage },
  "schedules resume": { run: schedulesResumeCommand, usage: schedulesResumeUsage },
};

function usage(): string {
  return [
    "usage: flowmonkey <command> [options]",
    "",
    ...Object.values(COMMANDS).map((c) => `  flowmonkey ${c.usage}`),
    "",
    "Options every command accepts (environment variables work too; flags win):",
    configUsage(),
    "  --json                   machine-readable output",
    "",
    "Exit codes: 0 ok, 1 failed (execution failed, request error, a dead task refused), 2 usage or configuration error.",
  ].join("\n");
}

/** Ctrl-C during `watch` ends the command cleanly (the NATS connection is closed) instead of killing it. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort(new Error("interrupted")));
  return controller.signal;
}

function resolveCommand(argv: string[]): { run: Command; rest: string[] } | undefined {
  const [first, second] = argv;
  if (first && second && COMMANDS[`${first} ${second}`]) return { run: COMMANDS[`${first} ${second}`]!.run, rest: argv.slice(2) };
  if (first && COMMANDS[first] && !first.includes(" ")) return { run: COMMANDS[first].run, rest: argv.slice(1) };
  return undefined;
}

/** Every error ends here: its code in the message, and the exit code from its kind. */
function report(out: Output, thrown: unknown): number {
  if (thrown instanceof UsageError) {
    out.error(thrown.code, thrown.message);
    return EXIT.config;
  }
  if (thrown instanceof ConfigError) {
    out.error("INVALID_INPUT", thrown.message);
    return EXIT.config;
  }
  if (isFmError(thrown)) {
    out.error(thrown.code, thrown.message);
    return EXIT.failed;
  }
  const err = toError(thrown);
  out.error("INTERNAL", err.stack ?? err.message);
  return EXIT.failed;
}

async function main(argv: string[]): Promise<number> {
  const out = createOutput({ json: argv.includes("--json") });
  if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    out.result(usage(), { commands: Object.values(COMMANDS).map((c) => c.usage) });
    return argv.length === 0 ? EXIT.config : EXIT.ok;
  }
  const command = resolveCommand(argv);
  if (!command) {
    out.error("INVALID_INPUT", `unknown command "${argv.slice(0, 2).join(" ")}"\n\n${usage()}`);
    return EXIT.config;
  }
  try {
    return await command.run(command.rest, out);
  } catch (thrown) {
    return report(out, thrown);
  }
}

flushAndExit(await main(process.argv.slice(2)));
