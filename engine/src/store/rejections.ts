import type { Queryable } from "./db.js";

export interface Rejection {
  subject: string;
  code: string;
  reason: string;
  excerpt?: string;
}

/** Inputs refused at the edge, with why: nothing from outside disappears without a trace. */
/** Rejections from a jsonb array parameter ($n). */
export const insertRejectionsSql = (param: string) => `
  INSERT INTO rejections (subject, code, reason, excerpt)
  SELECT x.subject, x.code, x.reason, x.excerpt
    FROM jsonb_to_recordset(${param}::jsonb) AS x(subject text, code text, reason text, excerpt text)`;

export async function countRejections(q: Queryable, code?: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections WHERE ($1::text IS NULL OR code = $1)", [
    code ?? null,
  ]);
  return rows[0]?.n ?? 0;
}
