import type { Failure } from "@flowmonkey/shared";
import type { Queryable } from "./db.js";

/** A map step's run that started: its whole list, written once (one row per item). */
export interface MapItemsStarted {
  executionId: string;
  stepId: string;
  run: number;
  items: unknown[];
}

/** An item that moved: dispatched (again), completed or failed. */
export interface MapItemUpdate {
  executionId: string;
  stepId: string;
  run: number;
  idx: number;
  status: "dispatched" | "completed" | "failed" | "cancelled";
  attempts: number;
  deadlineAt?: string;
  output?: unknown;
  error?: Failure;
}

/** A run that ended before all its items did (its step failed, its execution ended): the rest are cancelled. */
export interface MapRunEnded {
  executionId: string;
  stepId: string;
  run: number;
}

/** An item as the engine reads it back to apply a result or dispatch it. */
export interface MapItemRow {
  idx: number;
  item: unknown;
  status: "pending" | "dispatched" | "completed" | "failed" | "cancelled";
  attempts: number;
}

/**
 * The writes of one transaction: the rows of runs it started — with the moves it made on them
 * already applied (a statement's UPDATE cannot see rows its own INSERT adds) — and the moves of
 * items written before.
 */
export function mapItemWrites(
  runs: MapItemsStarted[],
  moves: MapItemUpdate[],
  ended: MapRunEnded[],
): { runs: Array<MapItemsStarted & { moves: MapItemUpdate[]; ended: boolean }>; moves: MapItemUpdate[]; ended: Array<MapRunEnded & { moved: number[] }> } {
  const keyOf = (m: { executionId: string; stepId: string; run: number }) => `${m.executionId}\u0000${m.stepId}\u0000${m.run}`;
  const started = new Map(runs.map((r) => [keyOf(r), { ...r, moves: [] as MapItemUpdate[], ended: false }]));
  const later: MapItemUpdate[] = [];
  for (const move of moves) {
    const run = started.get(keyOf(move));
    if (run) run.moves.push(move);
    else later.push(move);
  }
  const endedLater: Array<MapRunEnded & { moved: number[] }> = [];
  for (const end of ended) {
    const run = started.get(keyOf(end));
    if (run) run.ended = true;
    // Items this transaction moves are left to their move: one statement must not update a row twice.
    else {
      const moved = later.filter((m) => keyOf(m) === keyOf(end));
      for (const m of moved) if (m.status === "dispatched") Object.assign(m, { status: "cancelled", deadlineAt: undefined });
      endedLater.push({ ...end, moved: moved.map((m) => m.idx) });
    }
  }
  return { runs: [...started.values()], moves: later, ended: endedLater };
}

/** The items of started runs, from a jsonb array parameter ($n) of mapItemWrites' runs; the last move of an item wins. */
export const insertMapItemsSql = (param: string) => `
  INSERT INTO map_items (execution_id, step_id, run, idx, item, status, attempts, deadline_at, output, error)
  SELECT x."executionId", x."stepId", x.run, (e.ord - 1)::int, e.value,
         CASE WHEN x.ended AND coalesce(m.status, 'pending') IN ('pending', 'dispatched') THEN 'cancelled' ELSE coalesce(m.status, 'pending') END,
         coalesce(m.attempts, 0), CASE WHEN x.ended THEN NULL ELSE m."deadlineAt" END, m.output, m.error
    FROM jsonb_to_recordset(${param}::jsonb) AS x("executionId" text, "stepId" text, run int, items jsonb, moves jsonb, ended boolean)
   CROSS JOIN LATERAL jsonb_array_elements(x.items) WITH ORDINALITY AS e(value, ord)
    LEFT JOIN LATERAL (
         SELECT mv.* FROM jsonb_array_elements(x.moves) WITH ORDINALITY AS j(value, n),
                jsonb_to_record(j.value) AS mv(idx int, status text, attempts int, "deadlineAt" timestamptz, output jsonb, error jsonb)
          WHERE mv.idx = e.ord - 1 ORDER BY j.n DESC LIMIT 1) AS m ON true
  ON CONFLICT DO NOTHING`;

/**
 * Item moves from a jsonb array parameter ($n) of MapItemUpdate, one primary-key probe each. An
 * item that moved twice in one transaction (a result and its retry) takes its last move.
 */
export const updateMapItemsSql = (param: string) => `
  UPDATE map_items m
     SET status = x.status, attempts = x.attempts, deadline_at = x."deadlineAt", output = x.output, error = x.error
    FROM (SELECT DISTINCT ON (r."executionId", r."stepId", r.run, r.idx) r.*
            FROM jsonb_array_elements(${param}::jsonb) WITH ORDINALITY AS j(value, n),
                 jsonb_to_record(j.value) AS r("executionId" text, "stepId" text, run int, idx int,
                 status text, attempts int, "deadlineAt" timestamptz, output jsonb, error jsonb)
           ORDER BY r."executionId", r."stepId", r.run, r.idx, j.n DESC) AS x
   WHERE m.execution_id = x."executionId" AND m.step_id = x."stepId" AND m.run = x.run AND m.idx = x.idx`;

/** Runs that ended early, from a jsonb array parameter ($n) of MapRunEnded: their items still pending or in flight are cancelled. */
export const cancelMapItemsSql = (param: string) => `
  UPDATE map_items m SET status = 'cancelled', deadline_at = NULL
    FROM jsonb_to_recordset(${param}::jsonb) AS x("executionId" text, "stepId" text, run int, moved jsonb)
   WHERE m.execution_id = x."executionId" AND m.step_id = x."stepId" AND m.run = x.run AND m.status IN ('pending', 'dispatched')
     AND NOT x.moved @> to_jsonb(m.idx)`;

/**
 * Items of one run: the given indexes, plus up to `ahead` items from `from` on (the next ones
 * to dispatch). Read after the execution row (whose version every item move changes), so
 * what it answers is what that version decided.
 */
export async function readMapItems(
  q: Queryable,
  run: { executionId: string; stepId: string; run: number },
  indexes: number[],
  from: number,
  ahead: number,
): Promise<Map<number, MapItemRow>> {
  const { rows } = await q.query<MapItemRow>(
    `SELECT idx, item, status, attempts FROM map_items
      WHERE execution_id = $1 AND step_id = $2 AND run = $3 AND (idx = ANY($4::int[]) OR (idx >= $5 AND idx < $5 + $6))`,
    [run.executionId, run.stepId, run.run, indexes, from, ahead],
    "fm_read_map_items",
  );
  return new Map(rows.map((r) => [r.idx, r]));
}

/** A finished run's output: every item's output in item order, null for the failed ones. Built in the database. */
export async function mapOutputOf(q: Queryable, run: { executionId: string; stepId: string; run: number }): Promise<unknown[]> {
  const { rows } = await q.query<{ output: unknown[] | null }>(
    `SELECT jsonb_agg(CASE WHEN status = 'completed' THEN coalesce(output, 'null'::jsonb) ELSE 'null'::jsonb END ORDER BY idx) AS output
       FROM map_items WHERE execution_id = $1 AND step_id = $2 AND run = $3`,
    [run.executionId, run.stepId, run.run],
  );
  return rows[0]?.output ?? [];
}
