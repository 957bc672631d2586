import type { Queryable } from "./db.js";

/** One offloaded-context blob of an execution, in the bucket it was stored in ('' = the mesh's shared bucket, before blobs were kept per region). */
export interface ContextBlobRow {
  executionId: string;
  bucket: string;
  name: string;
}

/** Blob rows from a jsonb array parameter ($n) of ContextBlobRow; a blob recorded before is kept once. */
export const insertContextBlobsSql = (param: string) => `
  INSERT INTO context_blobs (execution_id, bucket, name)
  SELECT x."executionId", x.bucket, x.name FROM jsonb_to_recordset(${param}::jsonb) AS x("executionId" text, bucket text, name text)
  ON CONFLICT DO NOTHING`;

/** Context blobs of executions that ended longer than `graceMs` ago (or no longer exist). */
export async function findEndedContextBlobs(q: Queryable, graceMs: number, limit: number): Promise<ContextBlobRow[]> {
  const { rows } = await q.query<ContextBlobRow>(
    `SELECT b.execution_id AS "executionId", b.bucket, b.name
       FROM context_blobs b LEFT JOIN executions e ON e.id = b.execution_id
      WHERE e.id IS NULL OR e.completed_at < now() - make_interval(secs => $1::int / 1000.0)
      LIMIT $2`,
    [graceMs, limit],
  );
  return rows;
}

export async function forgetContextBlobs(q: Queryable, blobs: ContextBlobRow[]): Promise<void> {
  if (blobs.length === 0) return;
  await q.query(
    `DELETE FROM context_blobs b USING jsonb_to_recordset($1::jsonb) AS x("executionId" text, bucket text, name text)
      WHERE b.execution_id = x."executionId" AND b.bucket = x.bucket AND b.name = x.name`,
    [JSON.stringify(blobs)],
  );
}
