import { EXIT, SchedulePutRequest, ScheduleRef, type ScheduleView } from "@flowmonkey/shared";
import { parseArg, parseCommand, tokenArg, UsageError } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const schedulesPutUsage =
  "schedules put <scheduleId> <flowId> (--cron '<pattern>' [--timezone <zone>] | --every <ms>) [--input <json>] [--tenant <id>] [--overlap skip|allow] [--missed skip|one] [--paused] [--json]";
export const schedulesLsUsage = "schedules ls [<flowId>] [--json]";
export const schedulesGetUsage = "schedules get <scheduleId> [--json]";
export const schedulesRmUsage = "schedules rm <scheduleId> [--json]";
export const schedulesPauseUsage = "schedules pause <scheduleId> [--json]";
export const schedulesResumeUsage = "schedules resume <scheduleId> [--json]";

/** One line per schedule: id, flow, timing, state, next tick, what the last tick did. */
function describe(s: ScheduleView): string {
  const timing = s.cron ? `cron "${s.cron}"${s.timezone ? ` ${s.timezone}` : ""}` : `every ${s.everyMs} ms`;
  const state = s.paused ? "paused" : `next ${s.nextFireAt ?? "never"}`;
  const last = s.lastTick ? `; last ${s.lastTick.tickAt}: ${s.lastTick.action}${s.lastTick.executionId ? ` ${s.lastTick.executionId}` : ""}${s.lastTick.note ? ` (${s.lastTick.note})` : ""}` : "";
  return `${s.scheduleId}  ${s.flowId}  ${timing}  ${state}  ${s.ticks} tick(s)${last}`;
}

/** `flowmonkey schedules put`: creates or replaces a schedule (fm.api.schedules.put). */
export async function schedulesPutCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: schedulesPutUsage,
    options: {
      cron: { type: "string" },
      timezone: { type: "string" },
      every: { type: "string" },
      input: { type: "string", short: "i" },
      tenant: { type: "string" },
      overlap: { type: "string" },
      missed: { type: "string" },
      paused: { type: "boolean" },
    },
    positionals: { min: 2, max: 2 },
  });
  if (cmd === "help") {
    return printHelp(out, schedulesPutUsage, [
      "Starts <flowId> on a timer: a cron pattern (5 fields, or 6 with seconds first; --timezone, default UTC)",
      "or every <ms> milliseconds (at least 1000). Each tick starts exactly one execution, whatever the number",
      "of engines. --overlap skip (default) skips a tick while the previous execution runs; --missed one",
      "(default) starts one execution for ticks that passed while no engine ran, skip drops them.",
    ]);
  }
  const [scheduleId, flowId] = cmd.positionals;
  const every = cmd.string("every");
  const input = cmd.string("input");
  let parsedInput: unknown;
  if (input !== undefined) {
    try {
      parsedInput = JSON.parse(input);
    } catch {
      throw new UsageError(`--input is not valid JSON: ${input}`, "INVALID_JSON");
    }
  }
  const fields = {
    scheduleId,
    flowId: tokenArg(flowId, "flowId"),
    ...(cmd.string("cron") !== undefined ? { cron: cmd.string("cron") } : {}),
    ...(cmd.string("timezone") !== undefined ? { timezone: cmd.string("timezone") } : {}),
    ...(every !== undefined ? { everyMs: Number(every) } : {}),
    ...(parsedInput !== undefined ? { input: parsedInput } : {}),
    ...(cmd.string("tenant") !== undefined ? { tenantId: cmd.string("tenant") } : {}),
    ...(cmd.string("overlap") !== undefined ? { overlap: cmd.string("overlap") } : {}),
    ...(cmd.string("missed") !== undefined ? { missed: cmd.string("missed") } : {}),
    ...(cmd.boolean("paused") ? { paused: true } : {}),
  };
  const request = parseArg(SchedulePutRequest, fields, "schedule");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.putSchedule(request);
    out.result(`${reply.created ? "created" : "replaced"} ${describe(reply)}`, reply);
    return EXIT.ok;
  });
}

export async function schedulesLsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: schedulesLsUsage, positionals: { min: 0, max: 1 } });
  if (cmd === "help") return printHelp(out, schedulesLsUsage, ["Lists schedules (of one flow), with their next tick and what the last one did."]);
  const flowId = cmd.positionals[0] === undefined ? undefined : tokenArg(cmd.positionals[0], "flowId");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.listSchedules(flowId);
    out.result(reply.schedules.length ? reply.schedules.map(describe) : ["no schedules"], reply);
    return EXIT.ok;
  });
}

/** get, rm, pause, resume: one schedule by id. */
function byId(usage: string, help: string, run: (api: Parameters<Parameters<typeof withSession>[1]>[0]["api"], scheduleId: string) => Promise<{ text: string; json: unknown }>) {
  return async (argv: string[], out: Output): Promise<number> => {
    const cmd = parseCommand(argv, { usage, positionals: { min: 1, max: 1 } });
    if (cmd === "help") return printHelp(out, usage, [help]);
    const { scheduleId } = parseArg(ScheduleRef, { scheduleId: cmd.positionals[0] }, "arguments");
    return withSession(cmd.config, async ({ api }) => {
      const { text, json } = await run(api, scheduleId);
      out.result(text, json);
      return EXIT.ok;
    });
  };
}

export const schedulesGetCommand = byId(schedulesGetUsage, "Shows one schedule.", async (api, id) => {
  const view = await api.getSchedule(id);
  return { text: describe(view), json: view };
});
export const schedulesRmCommand = byId(schedulesRmUsage, "Deletes a schedule; executions it started are not touched.", async (api, id) => {
  const reply = await api.deleteSchedule(id);
  return { text: reply.deleted ? `deleted ${id}` : `no schedule ${id}`, json: reply };
});
export const schedulesPauseCommand = byId(schedulesPauseUsage, "Pauses a schedule: no ticks until it is resumed.", async (api, id) => {
  const view = await api.pauseSchedule(id);
  return { text: `paused ${describe(view)}`, json: view };
});
export const schedulesResumeCommand = byId(schedulesResumeUsage, "Resumes a schedule from now: ticks that passed while it was paused are not run.", async (api, id) => {
  const view = await api.resumeSchedule(id);
  return { text: `resumed ${describe(view)}`, json: view };
});
