import { FmError, type Logger, type ScheduleSpec, type ScheduleTickOutcome, type ScheduleView, type FlowDefinition } from "@flowmonkey/shared";
import type { Db, Queryable } from "../store/db.js";
import {
  claimDueSchedules,
  deleteFlowSchedulesExcept,
  deleteSchedule,
  executionRunning,
  getSchedule,
  listSchedules,
  recordScheduleTick,
  scheduleView,
  setSchedulePaused,
  upsertSchedule,
  type ScheduleRow,
} from "../store/schedules.js";
import { compileCron, lateGraceMs, nextTick, type ScheduleTiming } from "./timing.js";

/** Starts one execution per request with the given start key (the intake's startExecutions). */
export type StartScheduled = (request: { flowId: string; startKey: string; input: Record<string, unknown>; tenantId?: string | undefined; scheduleId: string }) => Promise<
  { executionId: string; created: boolean } | { error: FmError }
>;

const timingOf = (r: { cron: string | null; every_ms: string | null; timezone: string | null; anchor_at: Date }): ScheduleTiming =>
  r.cron ? { cron: r.cron, timezone: r.timezone ?? undefined } : { everyMs: Number(r.every_ms), anchorAt: new Date(r.anchor_at) };

/** How long a claimed schedule is this engine's: past it (the engine died), another takes the tick. */
const CLAIM_MS = 30_000;

/** Ticks counted one by one at most this far back: a long outage is reported as "at least" this many. */
const MAX_COUNTED_LATE_TICKS = 10_000;

/** The schedules API: put, get, list, delete, pause, resume (fm.api.schedules.*). */
export function scheduleApi(db: Db, flowExists: (flowId: string) => Promise<boolean>) {
  const firstFire = (spec: ScheduleSpec) => (anchorAt: Date) =>
    nextTick(spec.cron ? { cron: spec.cron, timezone: spec.timezone } : { everyMs: spec.everyMs!, anchorAt }, new Date(anchorAt.getTime() - 1));
  const found = async (scheduleId: string): Promise<ScheduleRow> => {
    const row = await getSchedule(db, scheduleId);
    if (!row) throw new FmError("SCHEDULE_NOT_FOUND", `no schedule "${scheduleId}"`);
    return row;
  };
  return {
    async put(spec: ScheduleSpec, source: "api" | "flow" = "api", q: Queryable = db): Promise<ScheduleView & { created: boolean }> {
      if (spec.cron) compileCron(spec.cron, spec.timezone);
      if (source === "api" && !(await flowExists(spec.flowId))) throw new FmError("FLOW_NOT_FOUND", `no flow "${spec.flowId}" is registered; push it before scheduling it`);
      const { view, created } = await upsertSchedule(q, spec, source, firstFire(spec));
      return { ...view, created };
    },
    get: async (scheduleId: string) => scheduleView(await found(scheduleId)),
    list: async (flowId?: string) => ({ schedules: (await listSchedules(db, flowId)).map(scheduleView) }),
    delete: async (scheduleId: string) => ({ scheduleId, deleted: await deleteSchedule(db, scheduleId) }),
    async pause(scheduleId: string) {
      await found(scheduleId);
      return scheduleView((await setSchedulePaused(db, scheduleId, true, undefined))!);
    },
    /** Resumes from now: ticks that passed while it was paused are not run. */
    async resume(scheduleId: string) {
      const row = await found(scheduleId);
      return scheduleView((await setSchedulePaused(db, scheduleId, false, nextTick(timingOf(row), new Date())))!);
    },
    /**
     * A pushed flow's `schedules:` become its flow-owned schedules `<flowId>.<id>`: listed ones are
     * put, ones its previous version declared and this one does not are deleted.
     */
    async syncFlow(definition: FlowDefinition): Promise<void> {
      const declared = definition.schedules ?? [];
      for (const s of declared) if (s.cron) compileCron(s.cron, s.timezone);
      const ids = declared.map((s) => `${definition.id}.${s.id}`);
      await db.tx(async (q) => {
        await deleteFlowSchedulesExcept(q, definition.id, ids);
        for (const { id, ...s } of declared) await this.put({ ...s, scheduleId: `${definition.id}.${id}`, flowId: definition.id }, "flow", q);
      });
    },
  };
}
export type ScheduleApi = ReturnType<typeof scheduleApi>;

/**
 * Fires due schedules: every `intervalMs` each engine claims due rows for a while (one engine
 * per schedule at a time), starts the tick's execution under the start key
 * `schedule:<id>:<tick>` — so a tick taken again after a crash starts nothing twice — then
 * moves the schedule to its next tick. Ticks that passed while no engine ran:
 * `missed: skip` drops them, `missed: one` starts one execution for them; `overlap: skip` skips
 * a tick while the schedule's previous execution is still going. Each tick's outcome is kept
 * on the schedule (`lastTick`).
 */
export function startScheduleTicker(options: { db: Db; log: Logger; intervalMs: number; start: StartScheduled }): { stop(): Promise<void>; tickOnce(): Promise<number> } {
  const { db, log } = options;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function fire(q: Queryable, row: ScheduleRow, now: Date): Promise<void> {
    const timing = timingOf(row);
    let latest = new Date(row.next_fire_at!);
    let passed = 0;
    for (let n = nextTick(timing, latest); n && n <= now && passed < MAX_COUNTED_LATE_TICKS; n = nextTick(timing, n)) {
      latest = n;
      passed++;
    }
    const onTime = now.getTime() - latest.getTime() <= lateGraceMs(timing, latest);
    const missedTicks = passed + (onTime ? 0 : 1);
    const next = nextTick(timing, now.getTime() >= latest.getTime() ? now : latest);
    const base = { tickAt: latest.toISOString(), ...(missedTicks > 0 ? { missedTicks } : {}) };
    let outcome: ScheduleTickOutcome;
    let executionId: string | undefined;
    if (!onTime && row.missed === "skip") {
      outcome = { ...base, action: "missed", note: `${missedTicks} tick(s) passed while no engine ran them (missed: skip)` };
    } else if (row.overlap === "skip" && row.last_execution_id && (await executionRunning(q, row.last_execution_id))) {
      outcome = { ...base, action: "skipped", note: `its previous execution ${row.last_execution_id} is still running (overlap: skip)` };
    } else {
      const started = await options.start({
        flowId: row.flow_id,
        startKey: `schedule:${row.schedule_id}:${latest.toISOString()}`,
        input: row.input ?? {},
        tenantId: row.tenant_id ?? undefined,
        scheduleId: row.schedule_id,
      });
      if ("error" in started) {
        outcome = { ...base, action: "skipped", note: `${started.error.code}: ${started.error.message}` };
      } else {
        executionId = started.executionId;
        const note = missedTicks > 0 ? `${missedTicks} late tick(s) folded into this one (missed: one)` : undefined;
        outcome = { ...base, action: "started", executionId, ...(note ? { note } : {}) };
      }
    }
    await recordScheduleTick(q, row.schedule_id, { nextFireAt: next, outcome, executionId });
    log.info({ scheduleId: row.schedule_id, flowId: row.flow_id, ...outcome }, `schedule tick: ${outcome.action}`);
  }

  async function tickOnce(): Promise<number> {
    const due = await claimDueSchedules(db, 50, CLAIM_MS);
    const now = new Date();
    for (const row of due) await fire(db, row, now);
    return due.length;
  }

  const loop = () => {
    if (stopped) return;
    running = tickOnce()
      .catch((err: unknown) => log.warn({ err }, "schedule tick failed; trying again"))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, options.intervalMs);
      });
  };
  loop();

  return {
    tickOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
