/**
 * Cost must not grow with history (issue 20): the statements every state change runs find their
 * rows through indexes, not by scanning executions or tasks, on an empty store, on 10,000
 * executions and 30,000 task attempts before their statistics were gathered (between autovacuum
 * runs) and after, and on 1,000,000 executions and 3,000,000 attempts. The engine's sessions
 * (enable_seqscan=off, store/db.ts) are used, as the engine runs them. Real PostgreSQL; EXPLAIN of the
 * very SQL the engine sends (generic plans, as a prepared statement reuses them), with one-row
 * parameters. Before the ANY(ARRAY(...)) predicates the execution update hashed the recordset
 * (estimated at 100 rows) and scanned every execution.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../../test/support/postgres.js";
import { openDb, type Db } from "../../src/store/db.js";
import { migrate } from "../../src/store/migrate.js";
import { updateExecutionsSql } from "../../src/store/executions.js";
import { recordTaskOutcomesSql, recordTaskPausesSql } from "../../src/store/tasks.js";
import { newerFlowsSql, regionMissesSql, staleVersionsSql } from "../../src/store/write-changes.js";

let db: Db;
let drop: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  drop = () => created.drop();
  db = await openDb({ databaseUrl: created.url, dataDir: "unused" });
  await migrate(db);
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

const HOT: Array<[string, string, unknown[]]> = [
  [
    "execution update",
    updateExecutionsSql("$1"),
    [JSON.stringify([{ id: "e-1", status: "running", context: {}, output: null, error: null, steps: {}, completed_at: null }])],
  ],
  ["task outcome", recordTaskOutcomesSql("$1"), [JSON.stringify([{ taskId: "e-1/a", attempt: 1, status: "completed" }])]],
  ["task pause", recordTaskPausesSql("$1"), [JSON.stringify([{ taskId: "e-1/a", attempt: 1, pausedMs: 5 }])]],
  ["cached states' versions", staleVersionsSql("$1"), [JSON.stringify([{ id: "e-1", version: "1234" }])]],
  ["assumed attempt regions", regionMissesSql("$1"), [JSON.stringify([{ task_id: "e-1/a", attempt: 1, region: "us-east-1" }])]],
];

/** The plan PostgreSQL picks for `sql` as a prepared statement's generic plan. */
async function genericPlan(sql: string, params: unknown[]): Promise<string> {
  await db.query("SET plan_cache_mode = force_generic_plan");
  const name = `hot_${Math.random().toString(36).slice(2)}`;
  await db.query(`PREPARE ${name} AS ${sql}`);
  try {
    const literal = params.map((p) => `'${String(p).replaceAll("'", "''")}'`).join(", ");
    const { rows } = await db.query<{ "QUERY PLAN": string }>(`EXPLAIN EXECUTE ${name}(${literal})`);
    return rows.map((r) => r["QUERY PLAN"]).join("\n");
  } finally {
    await db.query(`DEALLOCATE ${name}`);
    await db.query("RESET plan_cache_mode");
  }
}

/** Adds executions x-<from+1> … x-<to> (one in ten running) and three completed attempts each. */
async function fill(from: number, to: number): Promise<void> {
  await db.query(`INSERT INTO flows (flow_id, version, definition, hash) VALUES ('f', 1, '{}'::jsonb, 'h') ON CONFLICT DO NOTHING`);
  await db.query(
    `INSERT INTO executions (id, start_key, flow_id, flow_version, status, steps, region, priority, completed_at)
     SELECT 'x-' || i, 'k-' || i, 'f', 1, CASE WHEN i % 10 = 0 THEN 'running' ELSE 'completed' END, '{}'::jsonb, 'us-east-1', 'normal',
            CASE WHEN i % 10 = 0 THEN NULL ELSE now() END
       FROM generate_series($1::int + 1, $2::int) AS i`,
    [from, to],
  );
  await db.query(
    `INSERT INTO tasks (task_id, attempt, execution_id, step_id, handler, region, status, dispatched_at)
     SELECT 'x-' || i || '/s' || s, 1, 'x-' || i, 's' || s, 'echo', 'us-east-1', 'completed', now()
       FROM generate_series($1::int + 1, $2::int) AS i, generate_series(1, 3) AS s`,
    [from, to],
  );
}

describe("the hot write path's plans", () => {
  // In order, on one store that grows: empty, 10,000 executions (30,000 attempts) before and
  // after their statistics are gathered, then 1,000,000 (3,000,000 attempts) analyzed.
  const analyze = () => db.exec("ANALYZE executions; ANALYZE tasks");
  const stores: Array<[string, () => Promise<void>]> = [
    ["an empty store", async () => undefined],
    ["10,000 executions, statistics not gathered yet", () => fill(0, 10_000)],
    ["10,000 executions, analyzed", analyze],
    ["1,000,000 executions, analyzed", () => fill(10_000, 1_000_000).then(analyze)],
  ];
  it.each(stores)("use indexes, not a scan of executions or tasks: %s", async (_store, grow) => {
    await grow();
    for (const [name, sql, params] of HOT) {
      const plan = await genericPlan(sql, params);
      expect(plan, `${name}:\n${plan}`).not.toMatch(/Seq Scan on (executions|tasks)\b/);
      expect(plan, `${name}:\n${plan}`).toMatch(/Index (Only )?Scan (using \w+ on|on) (executions|tasks)/);
    }
    // The latest-version check probes the flows' primary key (a registry of a handful of rows here, but every start batch runs it).
    const flows = await genericPlan(newerFlowsSql("$1"), [JSON.stringify([{ flow_id: "f", version: 1 }])]);
    expect(flows).toMatch(/Index (Only )?Scan (Backward )?(using \w+ on|on) flows/);
  }, 180_000);
});
