import type { ScheduleSpec, ScheduleTickOutcome, ScheduleView } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

export interface ScheduleRow {
  schedule_id: string;
  flow_id: string;
  source: "api" | "flow";
  cron: string | null;
  every_ms: string | null;
  timezone: string | null;
  input: Record<string, unknown> | null;
  tenant_id: string | null;
  overlap: "skip" | "allow";
  missed: "skip" | "one";
  paused: boolean;
  anchor_at: Date;
  next_fire_at: Date | null;
  last_tick: ScheduleTickOutcome | null;
  last_execution_id: string | null;
  ticks: string;
  created_at: Date;
  updated_at: Date;
}

const iso = (d: Date | string) => new Date(d).toISOString();

export function scheduleView(r: ScheduleRow): ScheduleView {
  return {
    scheduleId: r.schedule_id,
    flowId: r.flow_id,
    ...(r.cron ? { cron: r.cron } : {}),
    ...(r.every_ms ? { everyMs: Number(r.every_ms) } : {}),
    ...(r.timezone ? { timezone: r.timezone } : {}),
    ...(r.input ? { input: r.input } : {}),
    ...(r.tenant_id ? { tenantId: r.tenant_id } : {}),
    overlap: r.overlap,
    missed: r.missed,
    paused: r.paused,
    source: r.source,
    ...(r.next_fire_at && !r.paused ? { nextFireAt: iso(r.next_fire_at) } : {}),
    ...(r.last_tick ? { lastTick: r.last_tick } : {}),
    ticks: Number(r.ticks),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
  };
}

/**
 * Creates or replaces a schedule. A replaced schedule keeps its history (ticks, last tick) and
 * its anchor unless its timing changed; its next tick is the one given.
 */
export async function upsertSchedule(
  q: Queryable,
  spec: ScheduleSpec,
  source: "api" | "flow",
  firstFireAt: (anchorAt: Date) => Date | undefined,
): Promise<{ view: ScheduleView; created: boolean }> {
  const anchorAt = new Date();
  const { rows } = await q.query<ScheduleRow & { created: boolean }>(
    `INSERT INTO schedules (schedule_id, flow_id, source, cron, every_ms, timezone, input, tenant_id, overlap, missed, paused, anchor_at, next_fire_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (schedule_id) DO UPDATE
        SET flow_id = excluded.flow_id, source = excluded.source, input = excluded.input, tenant_id = excluded.tenant_id,
            overlap = excluded.overlap, missed = excluded.missed, paused = excluded.paused, updated_at = now(),
            cron = excluded.cron, every_ms = excluded.every_ms, timezone = excluded.timezone,
            anchor_at = CASE WHEN (schedules.cron, schedules.every_ms, schedules.timezone) IS NOT DISTINCT FROM (excluded.cron, excluded.every_ms, excluded.timezone)
                             THEN schedules.anchor_at ELSE excluded.anchor_at END,
            next_fire_at = CASE WHEN (schedules.cron, schedules.every_ms, schedules.timezone) IS NOT DISTINCT FROM (excluded.cron, excluded.every_ms, excluded.timezone)
                                 AND schedules.next_fire_at IS NOT NULL
                             THEN schedules.next_fire_at ELSE excluded.next_fire_at END
     RETURNING *, (xmax = 0) AS created`,
    [
      spec.scheduleId,
      spec.flowId,
      source,
      spec.cron ?? null,
      spec.everyMs ?? null,
      spec.timezone ?? null,
      spec.input ?? null,
      spec.tenantId ?? null,
      spec.overlap,
      spec.missed,
      spec.paused,
      anchorAt,
      firstFireAt(anchorAt) ?? null,
    ],
  );
  const row = rows[0]!;
  return { view: scheduleView(row), created: row.created };
}

export async function getSchedule(q: Queryable, scheduleId: string): Promise<ScheduleRow | undefined> {
  const { rows } = await q.query<ScheduleRow>("SELECT * FROM schedules WHERE schedule_id = $1", [scheduleId]);
  return rows[0];
}

export async function listSchedules(q: Queryable, flowId?: string): Promise<ScheduleRow[]> {
  const { rows } = await q.query<ScheduleRow>("SELECT * FROM schedules WHERE ($1::text IS NULL OR flow_id = $1) ORDER BY schedule_id", [flowId ?? null]);
  return rows;
}

export async function deleteSchedule(q: Queryable, scheduleId: string): Promise<boolean> {
  const { rowCount } = await q.query("DELETE FROM schedules WHERE schedule_id = $1", [scheduleId]);
  return rowCount > 0;
}

/** Pauses or resumes; a resumed schedule fires next at `nextFireAt` (ticks while paused are not run). */
export async function setSchedulePaused(q: Queryable, scheduleId: string, paused: boolean, nextFireAt: Date | undefined): Promise<ScheduleRow | undefined> {
  const { rows } = await q.query<ScheduleRow>(
    `UPDATE schedules SET paused = $2, next_fire_at = CASE WHEN $2 THEN next_fire_at ELSE $3 END, updated_at = now()
      WHERE schedule_id = $1 RETURNING *`,
    [scheduleId, paused, nextFireAt ?? null],
  );
  return rows[0];
}

/** The flow-declared schedules of `flowId` not in `keep` (removed from its file): deleted. */
export async function deleteFlowSchedulesExcept(q: Queryable, flowId: string, keep: string[]): Promise<number> {
  const { rowCount } = await q.query("DELETE FROM schedules WHERE flow_id = $1 AND source = 'flow' AND NOT (schedule_id = ANY($2::text[]))", [flowId, keep]);
  return rowCount;
}

/**
 * Claims due schedules for `claimMs` (rows another engine holds or has claimed are skipped): one
 * short statement, so starting their executions holds no lock.
 */
export async function claimDueSchedules(q: Queryable, limit: number, claimMs: number): Promise<ScheduleRow[]> {
  const { rows } = await q.query<ScheduleRow>(
    `UPDATE schedules SET claimed_until = now() + make_interval(secs => $2::int / 1000.0)
      WHERE schedule_id IN (
        SELECT schedule_id FROM schedules
         WHERE NOT paused AND next_fire_at IS NOT NULL AND next_fire_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
         ORDER BY next_fire_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [limit, claimMs],
  );
  return rows;
}

export async function recordScheduleTick(
  q: Queryable,
  scheduleId: string,
  tick: { nextFireAt: Date | undefined; outcome: ScheduleTickOutcome; executionId: string | undefined },
): Promise<void> {
  await q.query(
    `UPDATE schedules SET next_fire_at = $2, last_tick = $3, last_execution_id = coalesce($4, last_execution_id), ticks = ticks + 1,
            claimed_until = NULL, updated_at = now()
      WHERE schedule_id = $1`,
    [scheduleId, tick.nextFireAt ?? null, JSON.stringify(tick.outcome), tick.executionId ?? null],
  );
}

/** Whether an execution is still going (not completed, failed or cancelled; a forgotten one is over). */
export async function executionRunning(q: Queryable, executionId: string): Promise<boolean> {
  const { rows } = await q.query<{ status: string }>("SELECT status FROM executions WHERE id = $1", [executionId]);
  const status = rows[0]?.status;
  return status !== undefined && !["completed", "failed", "cancelled"].includes(status);
}
