import type { Queryable } from "./db.js";

/** Executions per status: the engine's metrics gauge (one grouped scan; statuses are few). */
export async function countExecutionsByStatus(q: Queryable): Promise<Array<{ status: string; count: number }>> {
  const { rows } = await q.query<{ status: string; count: number }>(`SELECT status, count(*)::int AS count FROM executions GROUP BY status`);
  return rows;
}

/** Dead letters still waiting for a decision (not replayed), per pool. */
export async function countOpenDeadTasks(q: Queryable): Promise<Array<{ region: string; handler: string; count: number }>> {
  const { rows } = await q.query<{ region: string; handler: string; count: number }>(
    `SELECT region, handler, count(*)::int AS count FROM dead_tasks WHERE replayed_at IS NULL GROUP BY region, handler`,
  );
  return rows;
}

/** The tenant of each execution (executions without one are left out). */
export async function tenantsOf(q: Queryable, executionIds: string[]): Promise<Map<string, string>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; tenant_id: string }>(`SELECT id, tenant_id FROM executions WHERE id = ANY($1::text[]) AND tenant_id IS NOT NULL`, [executionIds]);
  return new Map(rows.map((r) => [r.id, r.tenant_id]));
}

/** The cheapest query that proves the store answers. */
export async function pingStore(q: Queryable): Promise<void> {
  await q.query(`SELECT 1`);
}
