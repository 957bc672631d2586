import { storableText } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

export interface Rejection {
  subject: string;
  code: string;
  reason: string;
  excerpt?: string;
}

/**
 * A rejection as it can be written: the record of bad input must not be bad itself. A raw NUL
 * byte in a refused message's excerpt (or in a subject, a reason quoting the input) made the
 * row unstorable and failed the whole batch it rode in.
 */
export function storableRejection(r: Rejection): Rejection {
  return {
    subject: storableText(r.subject),
    code: storableText(r.code),
    reason: storableText(r.reason),
    ...(r.excerpt === undefined ? {} : { excerpt: storableText(r.excerpt) }),
  };
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

/** Writes rejections on their own, outside a state change (a message given up on, an unreadable event). */
export async function recordRejections(q: Queryable, rejections: Rejection[]): Promise<void> {
  if (rejections.length === 0) return;
  await q.query(insertRejectionsSql("$1"), [JSON.stringify(rejections.map(storableRejection))]);
}
