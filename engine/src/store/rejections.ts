import type { Queryable } from "./db.js";

export interface Rejection {
  subject: string;
  code: string;
  reason: string;
  excerpt?: string;
}

/** Inputs refused at the edge, with why: nothing from outside disappears without a trace. */
export async function insertRejections(q: Queryable, rejections: Rejection[]): Promise<void> {
  if (rejections.length === 0) return;
  await q.query(
    `INSERT INTO rejections (subject, code, reason, excerpt)
     SELECT x.subject, x.code, x.reason, x.excerpt
       FROM jsonb_to_recordset($1::jsonb) AS x(subject text, code text, reason text, excerpt text)`,
    [JSON.stringify(rejections)],
  );
}

export async function countRejections(q: Queryable, code?: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections WHERE ($1::text IS NULL OR code = $1)", [
    code ?? null,
  ]);
  return rows[0]?.n ?? 0;
}
