import { z } from "zod";
import { JsonObject, Timestamp } from "./messages/common.js";
import { Token } from "./tokens.js";

/** What a schedule does with a tick when its previous execution is still running. */
export const ScheduleOverlap = z.enum(["skip", "allow"]);
/** What a schedule does with ticks that passed while no engine ran (or the engine was late). */
export const ScheduleMissed = z.enum(["skip", "one"]);

const IANA_ZONE = /^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+){0,2}$|^UTC$/;

/**
 * When a schedule fires — a cron pattern (5 or 6 fields, read in `timezone`, default UTC) or a
 * fixed period (`everyMs`, at least 1 s, counted from when the schedule was put) — and what
 * it does with overlapping and missed ticks.
 */
const scheduleFields = {
  cron: z.string().trim().min(1).max(200).optional().describe("a cron pattern: 5 fields, or 6 with seconds first (exactly one of cron and everyMs)"),
  everyMs: z.number().int().min(1000).max(366 * 86_400_000).optional().describe("a fixed period in ms, at least 1000, counted from when the schedule was put"),
  timezone: z.string().regex(IANA_ZONE, "must be an IANA time zone such as Europe/Berlin or UTC").optional().describe("the IANA time zone the cron pattern is read in (default UTC)"),
  input: JsonObject.optional().describe("the input of each execution it starts"),
  overlap: ScheduleOverlap.default("skip").describe("skip: no start while its previous execution still runs; allow: start anyway"),
  missed: ScheduleMissed.default("one").describe("ticks that passed while no engine ran: one execution for them all, or skip them"),
  paused: z.boolean().default(false).describe("put it paused (no ticks until resumed)"),
};
const oneTiming = (t: { cron?: string | undefined; everyMs?: number | undefined }) => (t.cron === undefined) !== (t.everyMs === undefined);
const zoneWithCron = (t: { cron?: string | undefined; timezone?: string | undefined }) => t.timezone === undefined || t.cron !== undefined;

/** A flow file's `schedules:` entry (its id is scoped to the flow: `<flowId>.<id>`). */
export const FlowScheduleDefinition = z
  .object({ id: Token.describe("the schedule's id in the flow; its full id is `<flowId>.<id>`"), ...scheduleFields })
  .strict()
  .refine(oneTiming, "give exactly one of cron and everyMs")
  .refine(zoneWithCron, "timezone applies to cron schedules only");
export type FlowScheduleDefinition = z.infer<typeof FlowScheduleDefinition>;

/** `fm.api.schedules.put`: creates or replaces a schedule. */
export const SchedulePutRequest = z
  .object({
    scheduleId: z.string().regex(/^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128})?$/, "must be 1-128 letters, digits, '-' or '_' (or <flowId>.<id>)"),
    flowId: Token,
    tenantId: z.string().min(1).max(128).optional(),
    ...scheduleFields,
  })
  .strict()
  .refine(oneTiming, "give exactly one of cron and everyMs")
  .refine(zoneWithCron, "timezone applies to cron schedules only");
export type SchedulePutRequest = z.input<typeof SchedulePutRequest>;
export type ScheduleSpec = z.output<typeof SchedulePutRequest>;

export const ScheduleRef = z.object({ scheduleId: z.string().min(1).max(257) }).strict();
export const ScheduleListRequest = z.object({ flowId: Token.optional() }).strict();

/** What a schedule did with its last tick. */
export const ScheduleTickOutcome = z.object({
  tickAt: Timestamp,
  /** started: an execution; skipped: its previous execution still ran (overlap: skip); missed: late ticks dropped (missed: skip) or started as one. */
  action: z.enum(["started", "skipped", "missed"]),
  executionId: z.string().optional(),
  /** Ticks that passed while no engine ran (or it was late), folded into this one. */
  missedTicks: z.number().int().nonnegative().optional(),
  note: z.string().optional(),
});
export type ScheduleTickOutcome = z.infer<typeof ScheduleTickOutcome>;

export const ScheduleView = z.object({
  scheduleId: z.string(),
  flowId: z.string(),
  cron: z.string().optional(),
  everyMs: z.number().optional(),
  timezone: z.string().optional(),
  input: JsonObject.optional(),
  tenantId: z.string().optional(),
  overlap: ScheduleOverlap,
  missed: ScheduleMissed,
  paused: z.boolean(),
  /** `api` (put by a client) or `flow` (declared in its flow file: replaced when the flow is pushed). */
  source: z.enum(["api", "flow"]),
  nextFireAt: Timestamp.optional(),
  lastTick: ScheduleTickOutcome.optional(),
  ticks: z.number().int().nonnegative(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type ScheduleView = z.infer<typeof ScheduleView>;
export const ScheduleListReply = z.object({ schedules: z.array(ScheduleView) });
export type ScheduleListReply = z.infer<typeof ScheduleListReply>;
export const ScheduleDeleteReply = z.object({ scheduleId: z.string(), deleted: z.boolean() });
export type ScheduleDeleteReply = z.infer<typeof ScheduleDeleteReply>;
