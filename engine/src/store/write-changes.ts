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
  const params = [
    jsonRows(updates, sizes),
    JSON.stringify(out.taskAttempts()),
    JSON.stringify(out.taskOutcomes.filter((o) => o.status !== "ignored")),
    JSON.stringify(out.rejections.map(storableRejection)),
    JSON.stringify(delayed),
    messages.length > 0 ? JSON.stringify(messages) : null,
    claimMs,
    JSON.stringify(out.deadTasks),
    JSON.stringify(out.waitsStarted()),
    JSON.stringify(out.waitsEnded()),
    JSON.stringify(out.taskPauses()),
    JSON.stringify(out.contextBlobs),
    versions ? updates.length : -1,
    jsonRows(newExecutionRows(inserts ?? []), sizes),
    JSON.stringify(map.runs),
    JSON.stringify(map.moves),
    JSON.stringify(map.ended),
    out.assumedRegions.length > 0 ? JSON.stringify(out.assumedRegions.map((a) => ({ task_id: a.taskId, attempt: a.attempt, region: a.region }))) : null,
    unchanged && unchanged.size > 0 ? JSON.stringify([...unchanged].map(([id, version]) => ({ id, version }))) : null,
    out.assumedLatest.length > 0 ? JSON.stringify(out.assumedLatest.map((f) => ({ flow_id: f.flowId, version: f.version }))) : null,
  ];
  const { rows } = await q.query<{ id: number | null; versions: Record<string, string> | null }>(
    `WITH
       inserted AS (${insertExecutionsSql("$14")} RETURNING id, xmin::text AS version),
       updated AS (${updateExecutionsSql("$1")} RETURNING e.id, e.xmin::text AS version),
       attempts AS (${insertTaskAttemptsSql("$2")} RETURNING 1),
       outcomes AS (${recordTaskOutcomesSql("$3")} RETURNING 1),
       rejected AS (${insertRejectionsSql("$4")} RETURNING 1),
       dead AS (${insertDeadTasksSql("$8")} RETURNING 1),
       waits AS (${insertWaitTokensSql("$9")} RETURNING 1),
       waits_over AS (${deleteWaitTokensSql("$10")} RETURNING 1),
       pauses AS (${recordTaskPausesSql("$11")} RETURNING 1),
       blobs AS (${insertContextBlobsSql("$12")} RETURNING 1),
       map_runs AS (${insertMapItemsSql("$15")} RETURNING 1),
       map_moves AS (${updateMapItemsSql("$16")} RETURNING 1),
       map_ended AS (${cancelMapItemsSql("$17")} RETURNING 1),
       later AS (
         INSERT INTO outbox (messages, not_before)
         SELECT x.messages, x.not_before FROM jsonb_to_recordset($5::jsonb) AS x(messages jsonb, not_before timestamptz)
         RETURNING 1),
       now_row AS (
         INSERT INTO outbox (messages, claimed_until)
         SELECT $6::jsonb, now() + make_interval(secs => $7::int / 1000.0) WHERE $6::jsonb IS NOT NULL
         RETURNING id::int)
     SELECT (SELECT id FROM now_row) AS id, fm_check_versions($13::int, (SELECT count(*) FROM updated)) AS updated,
            fm_check_versions(0, (${staleVersionsSql("$19")})) AS unchanged,
            fm_check_attempt_regions((${regionMissesSql("$18")})) AS regions,
            fm_check_latest_flows((${newerFlowsSql("$20")})) AS flows,
            (SELECT jsonb_object_agg(v.id, v.version) FROM (SELECT id, version FROM updated UNION ALL SELECT id, version FROM inserted) v) AS versions`,
    params,
    "fm_write_changes",
  );
  const id = rows[0]?.id;
  const written = new Map(Object.entries(rows[0]?.versions ?? {}));
  return id === null || id === undefined ? { versions: written, sizes } : { outbox: { id, messages }, versions: written, sizes };
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
