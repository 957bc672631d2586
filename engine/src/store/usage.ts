import type { UsageReply } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

const DAY_MS = 24 * 3600_000;

interface UsageRow {
  tenant_id: string | null;
  tier: string | null;
  executions: string;
  tasks: string;
  active_ms: string;
  paused_ms: string;
}

/**
 * Usage per tenant and pool tier from the attempt rows: active compute as the workers measured
 * it, paused time as the engine measured it (from parking to resume). Attempts count in the
 * period they ended in. Executions the retention sweep has forgotten count through their
 * hourly roll-ups (`usage_rollups`): an hour counts when it starts inside the period, and a
 * forgotten execution whose attempts ended in different hours counts once per hour.
 */
export async function usageOf(q: Queryable, request: { tenantId?: string | undefined; from?: string | undefined; to?: string | undefined }, now = new Date()): Promise<UsageReply> {
  const to = request.to ? new Date(request.to) : now;
  const from = request.from ? new Date(request.from) : new Date(to.getTime() - 30 * DAY_MS);
  // One pass: a row per (tenant, tier) and, with tier NULL, a total per tenant (distinct executions do not add up over tiers).
  const { rows } = await q.query<UsageRow>(
    `SELECT e.tenant_id, coalesce(t.tier, 'unknown') AS tier, count(DISTINCT t.execution_id) AS executions, count(*) AS tasks,
            coalesce(sum(t.active_ms), 0) AS active_ms, coalesce(sum(t.paused_ms), 0) AS paused_ms
       FROM tasks t JOIN executions e ON e.id = t.execution_id
      WHERE t.completed_at >= $1 AND t.completed_at < $2 AND ($3::text IS NULL OR e.tenant_id = $3)
      GROUP BY GROUPING SETS ((e.tenant_id, coalesce(t.tier, 'unknown')), (e.tenant_id))
     UNION ALL
     SELECT nullif(tenant_id, ''), nullif(tier, ''), sum(executions), sum(tasks), sum(active_ms), sum(paused_ms)
       FROM usage_rollups
      WHERE hour >= $1 AND hour < $2 AND ($3::text IS NULL OR tenant_id = $3)
      GROUP BY tenant_id, tier`,
    [from.toISOString(), to.toISOString(), request.tenantId ?? null],
  );
  // Totals rows first, so each tenant exists before its tiers are added to it.
  rows.sort((a, b) => Number(a.tier !== null) - Number(b.tier !== null));
  const tenants = new Map<string | null, UsageReply["tenants"][number]>();
  for (const r of rows) {
    const totals = { tasks: Number(r.tasks), activeMs: Number(r.active_ms), pausedMs: Number(r.paused_ms) };
    const tenant = tenants.get(r.tenant_id);
    if (r.tier === null) {
      if (!tenant) tenants.set(r.tenant_id, { ...(r.tenant_id === null ? {} : { tenantId: r.tenant_id }), executions: Number(r.executions), ...totals, byTier: {} });
      else addTotals(tenant, { ...totals, executions: Number(r.executions) });
    } else if (tenant) {
      const tier = tenant.byTier[r.tier];
      tenant.byTier[r.tier] = tier ? { tasks: tier.tasks + totals.tasks, activeMs: tier.activeMs + totals.activeMs, pausedMs: tier.pausedMs + totals.pausedMs } : totals;
    }
  }
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    tenants: [...tenants.values()].sort((a, b) => (a.tenantId ?? "").localeCompare(b.tenantId ?? "")),
  };
}

function addTotals(into: UsageReply["tenants"][number], more: { executions: number; tasks: number; activeMs: number; pausedMs: number }): void {
  into.executions += more.executions;
  into.tasks += more.tasks;
  into.activeMs += more.activeMs;
  into.pausedMs += more.pausedMs;
}
