import type { Changes } from "../execution/changes.js";
import type { Queryable } from "./db.js";
import { executionUpdateRows, insertExecutionsSql, newExecutionRows, updateExecutionsSql, type NewExecution } from "./executions.js";
import type { OutboxMessage } from "./outbox.js";
import { insertDeadTasksSql } from "./dead-tasks.js";
import { insertRejectionsSql, storableRejection } from "./rejections.js";
import { insertTaskAttemptsSql, recordTaskOutcomesSql, recordTaskPausesSql } from "./tasks.js";
import { deleteWaitTokensSql, insertWaitTokensSql } from "./wait-tokens.js";
import { insertContextBlobsSql } from "./context-blobs.js";
import { cancelMapItemsSql, insertMapItemsSql, mapItemWrites, updateMapItemsSql } from "./map-items.js";

/**
 * Writes everything a state change produced — execution states, new attempts, outcomes,
 * rejections, dead letters, wait tokens, map items, delayed and immediate outbox rows — in ONE statement of data-modifying CTEs:
 * one round trip per transaction however many executions it carries. Each CTE runs to
 * completion whether or not its rows are read.
 *
 * The statement holds only the CTEs and checks that have rows this time (a step's result: the
 * execution update, the attempt's outcome, the next attempt and the outbox row): PostgreSQL
 * initializes every node of a statement on each call, empty or not, and with all seventeen CTEs
 * that initialization was a fifth of its CPU at 250 flows/s (perf, ExecutorStart 22 %). Each
 * shape is its own prepared statement, so each keeps its generic plan.
 *
 * Returns the id of the immediate outbox row, which the committing process publishes itself,
 * and the row version (xmin) each inserted or updated execution now has.
 * With `versions` it is the whole optimistic transition: one statement is one transaction, so
 * a version that no longer matches rolls back every CTE (fm_check_versions raises).
 */
export async function writeChanges(
  q: Queryable,
  out: Changes,
  claimMs: number,
  /**
   * The row versions the changes were decided on (optimistic transitions): the statement
   * writes nothing, and fails with serialization_failure (40001), unless every changed
   * execution is still that version. Absent: the caller holds the rows locked.
   */
  versions?: ReadonlyMap<string, string>,
  /**
   * New executions to insert in the same statement (optimistic starts): no ON CONFLICT, so a
   * start key or id seen before fails the whole statement with unique_violation (23505).
   */
  inserts?: NewExecution[],
  /**
   * Executions decided on but not changed, at the versions they were decided on (states taken
   * from the execution cache): a decision to ignore or reject a result on a stale state must
   * fail like a stale change does (serialization_failure), so that it is made again on fresh state.
   */
  unchanged?: ReadonlyMap<string, string>,
): Promise<Written> {
  const messages = out.immediateMessages();
  const delayed = out.delayedMessages().map((d) => ({ messages: d.messages, not_before: d.notBefore.toISOString() }));
  const updates = executionUpdateRows([...out.updated.values()], versions);
  const map = mapItemWrites(out.mapRuns(), out.mapItems(), out.mapRunsEnded());
  const sizes = new Map<string, number>();
  const outcomes = out.taskOutcomes.filter((o) => o.status !== "ignored");
  const newRows = newExecutionRows(inserts ?? []);
  // Each of these flattens every execution's effects: read once.
  const attempts = out.taskAttempts();
  const waitsStarted = out.waitsStarted();
  const waitsEnded = out.waitsEnded();
  const pauses = out.taskPauses();

  const w = new StatementBuilder();
  const rows = (param: unknown[]) => JSON.stringify(param);
  const inserted = w.cte("inserted", newRows.length > 0, () => `${insertExecutionsSql(w.param(jsonRows(newRows, sizes)))} RETURNING id, xmin::text AS version`);
  const updated = w.cte("updated", updates.length > 0, () => `${updateExecutionsSql(w.param(jsonRows(updates, sizes)))} RETURNING e.id, e.xmin::text AS version`);
  w.cte("attempts", attempts.length > 0, () => insertTaskAttemptsSql(w.param(rows(attempts))));
  w.cte("outcomes", outcomes.length > 0, () => recordTaskOutcomesSql(w.param(rows(outcomes))));
  w.cte("rejected", out.rejections.length > 0, () => insertRejectionsSql(w.param(rows(out.rejections.map(storableRejection)))));
  w.cte("dead", out.deadTasks.length > 0, () => insertDeadTasksSql(w.param(rows(out.deadTasks))));
  w.cte("waits", waitsStarted.length > 0, () => insertWaitTokensSql(w.param(rows(waitsStarted))));
  w.cte("waits_over", waitsEnded.length > 0, () => deleteWaitTokensSql(w.param(rows(waitsEnded))));
  w.cte("pauses", pauses.length > 0, () => recordTaskPausesSql(w.param(rows(pauses))));
  w.cte("blobs", out.contextBlobs.length > 0, () => insertContextBlobsSql(w.param(rows(out.contextBlobs))));
  w.cte("map_runs", map.runs.length > 0, () => insertMapItemsSql(w.param(rows(map.runs))));
  w.cte("map_moves", map.moves.length > 0, () => updateMapItemsSql(w.param(rows(map.moves))));
  w.cte("map_ended", map.ended.length > 0, () => cancelMapItemsSql(w.param(rows(map.ended))));
  w.cte(
    "later",
    delayed.length > 0,
    () => `INSERT INTO outbox (messages, not_before)
         SELECT x.messages, x.not_before FROM jsonb_to_recordset(${w.param(rows(delayed))}::jsonb) AS x(messages jsonb, not_before timestamptz)`,
  );
  const nowRow = w.cte(
    "now_row",
    messages.length > 0,
    () => `INSERT INTO outbox (messages, claimed_until)
         VALUES (${w.param(JSON.stringify(messages))}::jsonb, now() + make_interval(secs => ${w.param(claimMs)}::int / 1000.0))
         RETURNING id::int`,
  );

  const columns = [nowRow ? "(SELECT id FROM now_row) AS id" : "NULL::int AS id"];
  // The checks of what the decision assumed; each raises (rolling the whole statement back) when it no longer holds.
  if (versions && updated) columns.push(`fm_check_versions(${w.param(updates.length)}::int, (SELECT count(*) FROM updated)) AS updated`);
  if (unchanged && unchanged.size > 0) {
    columns.push(`fm_check_versions(0, (${staleVersionsSql(w.param(rows([...unchanged].map(([id, version]) => ({ id, version })))))})) AS unchanged`);
  }
  if (out.assumedRegions.length > 0) {
    const assumed = out.assumedRegions.map((a) => ({ task_id: a.taskId, attempt: a.attempt, region: a.region }));
    columns.push(`fm_check_attempt_regions((${regionMissesSql(w.param(rows(assumed)))})) AS regions`);
  }
  if (out.assumedLatest.length > 0) {
    columns.push(`fm_check_latest_flows((${newerFlowsSql(w.param(rows(out.assumedLatest.map((f) => ({ flow_id: f.flowId, version: f.version })))))})) AS flows`);
  }
  const written = [updated && "SELECT id, version FROM updated", inserted && "SELECT id, version FROM inserted"].filter(Boolean);
  columns.push(written.length > 0 ? `(SELECT jsonb_object_agg(v.id, v.version) FROM (${written.join(" UNION ALL ")}) v) AS versions` : "NULL::jsonb AS versions");

  const { text, name } = w.statement(`SELECT ${columns.join(", ")}`, "fm_write_changes");
  const result = await q.query<{ id: number | null; versions: Record<string, string> | null }>(text, w.params, name);
  const id = result.rows[0]?.id;
  const versionsNow = new Map(Object.entries(result.rows[0]?.versions ?? {}));
  return id === null || id === undefined ? { versions: versionsNow, sizes } : { outbox: { id, messages }, versions: versionsNow, sizes };
}

/**
 * A statement of CTEs that are included only when they have rows, with its parameters numbered
 * in the order they are added. Its name says which CTEs and checks it holds (the same shape is
 * the same text), so each shape is prepared once per connection. A CTE's SQL must depend only
 * on whether it is included, never on its rows (else one name would stand for two texts, which
 * pg refuses: "Prepared statements must be unique").
 */
class StatementBuilder {
  readonly params: unknown[] = [];
  private readonly ctes: string[] = [];
  private readonly shape: string[] = [];

  param(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  /** Adds `name AS (sql)` when `include`; answers whether it did. */
  cte(name: string, include: boolean, sql: () => string): boolean {
    if (!include) return false;
    this.ctes.push(`${name} AS (${sql()})`);
    this.shape.push(name);
    return true;
  }

  statement(select: string, prefix: string): { text: string; name: string } {
    const text = this.ctes.length > 0 ? `WITH\n${this.ctes.join(",\n")}\n${select}` : select;
    // The select's checks are part of the shape too; a short digest of the whole text names it.
    return { text, name: `${prefix}_${this.shape.map((n) => n.replace(/_/g, "")).join("_")}_${digest(select)}` };
  }
}

/** A short, stable digest of a string (FNV-1a, base 36): tells apart shapes with the same CTEs but other checks. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

/** A JSON array of execution rows, noting each row's length as it goes (what caching its state would hold, roughly). */
function jsonRows(rows: Array<{ id: string }>, sizes: Map<string, number>): string {
  const parts = rows.map((row) => {
    const json = JSON.stringify(row);
    sizes.set(row.id, json.length);
    return json;
  });
  return `[${parts.join(",")}]`;
}

/** What a write answers: the immediate outbox row (the committing process publishes it) and each written execution's new row version. */
export interface Written {
  outbox?: { id: number; messages: OutboxMessage[] };
  versions: ReadonlyMap<string, string>;
  /** Each written execution's row as JSON, in characters: the execution cache's measure of a state. */
  sizes: ReadonlyMap<string, number>;
}

// The write's checks of what a decision assumed instead of reading (migration 0016). Each is a
// correlated probe of a primary key per row of its jsonb array parameter, whatever the planner
// guesses of the array's length; each counts the rows that no longer hold.

/** Cached states ({id, version}) whose execution row is another version now (or gone). */
export const staleVersionsSql = (param: string) => `
  SELECT count(*) FROM jsonb_to_recordset(${param}::jsonb) AS x(id text, version text)
   WHERE (SELECT e.xmin::text FROM executions e WHERE e.id = x.id) IS DISTINCT FROM x.version`;

/** Assumed attempts ({task_id, attempt, region}) not on record in that region. */
export const regionMissesSql = (param: string) => `
  SELECT count(*) FROM jsonb_to_recordset(${param}::jsonb) AS x(task_id text, attempt int, region text)
   WHERE (SELECT t.region FROM tasks t WHERE t.task_id = x.task_id AND t.attempt = x.attempt) IS DISTINCT FROM x.region`;

/** Flow versions ({flow_id, version}) assumed latest that are not (a newer one exists). */
export const newerFlowsSql = (param: string) => `
  SELECT count(*) FROM jsonb_to_recordset(${param}::jsonb) AS x(flow_id text, version int)
   WHERE (SELECT max(f.version) FROM flows f WHERE f.flow_id = x.flow_id) IS DISTINCT FROM x.version`;
