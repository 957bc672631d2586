import { Cron } from "croner";
import { FmError } from "@flowmonkey/shared";

/** When a schedule fires: a cron pattern in a time zone, or a fixed period from an anchor. */
export type ScheduleTiming = { cron: string; timezone?: string | undefined } | { everyMs: number; anchorAt: Date };

/** Longest a tick may wait for an engine and still count as on time (see lateGraceMs). */
const MAX_GRACE_MS = 60_000;

/** A cron pattern the engine can run, or INVALID_INPUT naming what is wrong with it. */
export function compileCron(pattern: string, timezone?: string): Cron {
  try {
    const cron = new Cron(pattern, { paused: true, ...(timezone ? { timezone } : {}) });
    // A valid pattern that never fires (30 February) is refused as well.
    if (!cron.nextRun()) throw new Error("it never fires");
    return cron;
  } catch (err) {
    throw new FmError("INVALID_INPUT", `cron "${pattern}"${timezone ? ` in ${timezone}` : ""} cannot be used: ${(err as Error).message}`);
  }
}

const crons = new Map<string, Cron>();

/** The first tick strictly after `after`; undefined when a cron pattern fires no more. */
export function nextTick(timing: ScheduleTiming, after: Date): Date | undefined {
  if ("everyMs" in timing) {
    const elapsed = after.getTime() - timing.anchorAt.getTime();
    const k = elapsed < 0 ? 0 : Math.floor(elapsed / timing.everyMs) + 1;
    return new Date(timing.anchorAt.getTime() + k * timing.everyMs);
  }
  const key = `${timing.timezone ?? ""}|${timing.cron}`;
  let cron = crons.get(key);
  if (!cron) {
    cron = compileCron(timing.cron, timing.timezone);
    if (crons.size > 1000) crons.clear();
    crons.set(key, cron);
  }
  return cron.nextRun(after) ?? undefined;
}

/**
 * How late a tick may be taken and still be on time: half its period, at most a minute (so a
 * 1 s schedule does not run a burst of late ticks after a restart, and an hourly one does not
 * call a tick taken 20 s late missed).
 */
export function lateGraceMs(timing: ScheduleTiming, tick: Date): number {
  const following = nextTick(timing, tick);
  const period = following ? following.getTime() - tick.getTime() : MAX_GRACE_MS * 2;
  return Math.min(MAX_GRACE_MS, Math.max(250, period / 2));
}
