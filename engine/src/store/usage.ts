import type { UsageReply } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

const DAY_MS = 24 * 3600_000;

/**
 * Usage per tenant and pool tier from the attempt rows: active compute as the workers measured
 * it, paused time as the engine measured it (from parking to resume). Attempts count in the
 * period they ended in.
 */
export async function usageOf(q: Queryable, request: { tenantId?: string | undefined; from?: string | undefined; to?: string | undefined }, now = new Date()): Promise<UsageReply> {
  const to = request.to ? new Date(request.to) : now;
  const from = request.from ? new Date(request.from) : new Date(to.getTime() - 30 * DAY_MS);
  // One pass: a row per (tenant, tier) and, with tier NULL, a total per tenant (distinct executions do not add up over tiers).
  const { rows } = await q.query<{ tenant_id: string | null; tier: string | null; executions: number; tasks: number; active_ms: string; paused_ms: string }>(
    `SELECT e.tenant_id, coalesce(t.tier, 'unknown') AS tier, count(DISTINCT t.execution_id)::int AS executions, count(*)::int AS tasks,
            coalesce(sum(t.active_ms), 0)::bigint AS active_ms, coalesce(sum(t.paused_ms), 0)::bigint AS paused_ms
       FROM tasks t JOIN executions e ON e.id = t.execution_id
      WHERE t.completed_at >= $1 AND t.completed_at < $2 AND ($3::text IS NULL OR e.tenant_id = $3)
      GROUP BY GROUPING SETS ((e.tenant_id, coalesce(t.tier, 'unknown')), (e.tenant_id))
      ORDER BY e.tenant_id NULLS FIRST, 2 NULLS FIRST`,
    [from.toISOString(), to.toISOString(), request.tenantId ?? null],
  );
  const tenants = new Map<string | null, UsageReply["tenants"][number]>();
  for (const r of rows) {
    const totals = { tasks: r.tasks, activeMs: Number(r.active_ms), pausedMs: Number(r.paused_ms) };
    if (r.tier === null) tenants.set(r.tenant_id, { ...(r.tenant_id === null ? {} : { tenantId: r.tenant_id }), executions: r.executions, ...totals, byTier: {} });
    else tenants.get(r.tenant_id)!.byTier[r.tier] = totals;
  }
  return { from: from.toISOString(), to: to.toISOString(), tenants: [...tenants.values()] };
}
