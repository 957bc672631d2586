import { FmError, type ExecutionListRequest, type ExecutionStatus, type Failure, type Priority } from "@flowmonkey/shared";
import type { ExecutionState, StepState } from "../scheduler/state.js";
import type { Db, Queryable } from "./db.js";

interface ExecutionRow {
  id: string;
  flow_id: string;
  flow_version: number;
  status: ExecutionStatus;
  input: unknown;
  context: Record<string, unknown>;
  output: unknown;
  error: Failure | null;
  steps: Record<string, StepState>;
  tenant_id: string | null;
  region: string;
  priority: Priority;
  labels: Record<string, string> | null;
  traceparent: string | null;
  created_at: Date | string;
  updated_at: Date | string;
  completed_at: Date | string | null;
  parent_execution_id: string | null;
  parent_step_id: string | null;
  parent_attempt: number | null;
  parent_task_id: string | null;
  depth: number;
}

const COLUMNS = `id, flow_id, flow_version, status, input, context, output, error, steps, tenant_id, region,
  priority, labels, traceparent, created_at, updated_at, completed_at, parent_execution_id, parent_step_id, parent_attempt, parent_task_id, depth`;

const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : new Date(d).toISOString());

function fromRow(r: ExecutionRow): ExecutionState {
  return {
    id: r.id,
    flowId: r.flow_id,
    flowVersion: r.flow_version,
    status: r.status,
    input: r.input,
    context: r.context ?? {},
    ...(r.output === null || r.output === undefined ? {} : { output: r.output }),
    ...(r.error ? { error: r.error } : {}),
    steps: r.steps,
    ...(r.parent_execution_id
      ? {
          parent: {
            executionId: r.parent_execution_id,
            stepId: r.parent_step_id!,
            attempt: r.parent_attempt!,
            depth: r.depth,
            ...(r.parent_task_id ? { taskId: r.parent_task_id } : {}),
          },
        }
      : {}),
    ...(r.tenant_id ? { tenantId: r.tenant_id } : {}),
    region: r.region,
    priority: r.priority,
    ...(r.labels ? { labels: r.labels } : {}),
    ...(r.traceparent ? { traceparent: r.traceparent } : {}),
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    ...(r.completed_at ? { completedAt: iso(r.completed_at) } : {}),
  };
}

export interface NewExecution {
  state: ExecutionState;
  startKey: string;
  /** The flow version's own retention in ms (0: forever); absent: the engine's FM_RETENTION. */
  retainMs?: number | undefined;
}

/**
 * Inserts new executions in one statement; a start key or id seen before is skipped (the
 * start was redelivered). Returns the ids that were created now.
 */
export async function insertExecutions(q: Queryable, executions: NewExecution[]): Promise<Set<string>> {
  if (executions.length === 0) return new Set();
  const { rows: created } = await q.query<{ id: string }>(
    `${insertExecutionsSql("$1")} ON CONFLICT DO NOTHING RETURNING id`,
    [JSON.stringify(newExecutionRows(executions))],
    "fm_insert_executions",
  );
  return new Set(created.map((r) => r.id));
}

/** New executions as the jsonb parameter of insertExecutionsSql. */
export function newExecutionRows(executions: NewExecution[]) {
  return executions.map(({ state: s, startKey, retainMs }) => ({
    id: s.id,
    start_key: startKey,
    flow_id: s.flowId,
    flow_version: s.flowVersion,
    status: s.status,
    input: s.input ?? null,
    context: s.context,
    output: s.output ?? null,
    error: s.error ?? null,
    steps: s.steps,
    tenant_id: s.tenantId ?? null,
    region: s.region,
    priority: s.priority,
    labels: s.labels ?? null,
    traceparent: s.traceparent ?? null,
    created_at: s.createdAt,
    completed_at: s.completedAt ?? null,
    retain_ms: retainMs ?? null,
    parent_execution_id: s.parent?.executionId ?? null,
    parent_step_id: s.parent?.stepId ?? null,
    parent_attempt: s.parent?.attempt ?? null,
    parent_task_id: s.parent?.taskId ?? null,
    depth: s.parent?.depth ?? 0,
  }));
}

/** Insert of the executions in a jsonb array parameter ($n); the caller adds ON CONFLICT / RETURNING. */
export const insertExecutionsSql = (param: string) => `
  INSERT INTO executions (id, start_key, flow_id, flow_version, status, input, context, output, error, steps,
                          tenant_id, region, priority, labels, traceparent, created_at, updated_at, completed_at, retain_ms,
                          parent_execution_id, parent_step_id, parent_attempt, parent_task_id, depth)
  SELECT x.id, x.start_key, x.flow_id, x.flow_version, x.status, x.input, coalesce(x.context, '{}'::jsonb), x.output,
         x.error, x.steps, x.tenant_id, x.region, x.priority, x.labels, x.traceparent, x.created_at, x.created_at, x.completed_at, x.retain_ms,
         x.parent_execution_id, x.parent_step_id, x.parent_attempt, x.parent_task_id, x.depth
    FROM jsonb_to_recordset(${param}::jsonb) AS x(id text, start_key text, flow_id text, flow_version int, status text,
         input jsonb, context jsonb, output jsonb, error jsonb, steps jsonb, tenant_id text, region text,
         priority text, labels jsonb, traceparent text, created_at timestamptz, completed_at timestamptz, retain_ms bigint,
         parent_execution_id text, parent_step_id text, parent_attempt int, parent_task_id text, depth int)`;

/** Execution ids already created for these start keys (for replies to redelivered starts). */
export async function idsByStartKey(q: Queryable, startKeys: string[]): Promise<Map<string, { id: string; tenantId: string | undefined }>> {
  if (startKeys.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; start_key: string; tenant_id: string | null }>(
    "SELECT id, start_key, tenant_id FROM executions WHERE start_key = ANY($1::text[])",
    [startKeys],
  );
  return new Map(rows.map((r) => [r.start_key, { id: r.id, tenantId: r.tenant_id ?? undefined }]));
}

/**
 * Loads and row-locks executions for a state change. Locks are taken in id order so that two
 * replicas locking overlapping sets never deadlock.
 */
export async function lockExecutions(q: Queryable, ids: string[]): Promise<Map<string, ExecutionState>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<ExecutionRow>(
    `SELECT ${COLUMNS} FROM executions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
    [[...new Set(ids)]],
    "fm_lock_executions",
  );
  return new Map(rows.map((r) => [r.id, fromRow(r)]));
}

/**
 * Reads executions WITHOUT locking them, each with its row version (xmin): the optimistic
 * transition decides on these and writes only if every row it changes is still that version.
 */
export async function readExecutions(q: Queryable, ids: string[]): Promise<{ states: Map<string, ExecutionState>; versions: Map<string, string> }> {
  const states = new Map<string, ExecutionState>();
  const versions = new Map<string, string>();
  if (ids.length === 0) return { states, versions };
  const { rows } = await q.query<ExecutionRow & { version: string }>(
    `SELECT ${COLUMNS}, xmin::text AS version FROM executions WHERE id = ANY($1::text[])`,
    [[...new Set(ids)]],
    "fm_read_executions",
  );
  for (const r of rows) {
    states.set(r.id, fromRow(r));
    versions.set(r.id, r.version);
  }
  return { states, versions };
}

/** Row-locks executions and answers their current row versions (the optimistic fallback's check). */
export async function lockExecutionVersions(q: Queryable, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query<{ id: string; version: string }>(
    "SELECT id, xmin::text AS version FROM executions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
    [[...new Set(ids)]],
    "fm_lock_execution_versions",
  );
  return new Map(rows.map((r) => [r.id, r.version]));
}

/**
 * One row per changed execution, as the jsonb parameter of updateExecutionsSql; with
 * `versions`, each row is written only if it is still the version read (else nothing is).
 */
export function executionUpdateRows(states: ExecutionState[], versions?: ReadonlyMap<string, string>) {
  return states.map((s) => ({
    version: versions?.get(s.id) ?? null,
    id: s.id,
    status: s.status,
    context: s.context,
    output: s.output ?? null,
    error: s.error ?? null,
    steps: s.steps,
    completed_at: s.completedAt ?? null,
  }));
}

/** Set-based update of many executions from a jsonb array parameter ($n). */
export const updateExecutionsSql = (param: string) => `
  UPDATE executions e
     SET status = x.status, context = x.context, output = x.output, error = x.error, steps = x.steps,
         completed_at = x.completed_at, updated_at = now()
    FROM jsonb_to_recordset(${param}::jsonb) AS x(id text, status text, context jsonb, output jsonb, error jsonb,
         steps jsonb, completed_at timestamptz, version text)
   WHERE e.id = x.id
     AND (x.version IS NULL OR e.xmin = x.version::xid)
     -- The same ids as an array: an index probe per row whatever the planner thinks the
     -- recordset holds (it assumes 100 rows, and with a large table it hashed them and scanned
     -- every execution instead).
     AND e.id = ANY (ARRAY(SELECT r ->> 'id' FROM jsonb_array_elements(${param}::jsonb) AS r))`;

export async function getExecution(db: Db, id: string): Promise<ExecutionState | undefined> {
  const { rows } = await db.query<ExecutionRow>(`SELECT ${COLUMNS} FROM executions WHERE id = $1`, [id]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** Newest first, keyset-paged on (created_at, id); the cursor is the last row's pair. */
export async function listExecutions(
  db: Db,
  filter: Required<Pick<ExecutionListRequest, "limit">> & Omit<ExecutionListRequest, "limit">,
): Promise<{ executions: ExecutionState[]; nextCursor?: string }> {
  const [cursorAt, cursorId] = filter.cursor ? decodeCursor(filter.cursor) : [null, null];
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${COLUMNS} FROM executions
      WHERE ($1::text IS NULL OR flow_id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR tenant_id = $3)
        AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::text))
      ORDER BY created_at DESC, id DESC LIMIT $6`,
    [filter.flowId ?? null, filter.status ?? null, filter.tenantId ?? null, cursorAt, cursorId, filter.limit + 1],
  );
  const page = rows.slice(0, filter.limit).map(fromRow);
  const last = page.at(-1);
  return rows.length > filter.limit && last ? { executions: page, nextCursor: encodeCursor(last.createdAt, last.id) } : { executions: page };
}

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(value) && typeof value[0] === "string" && typeof value[1] === "string" && !Number.isNaN(Date.parse(value[0]))) {
      return [value[0], value[1]];
    }
  } catch {
    // Not base64url JSON: reported below like any other cursor we did not issue.
  }
  throw new FmError("INVALID_INPUT", "cursor: not a cursor from a previous page (pass nextCursor back unchanged)");
}
