import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import pg from "pg";
import { toError } from "@flowmonkey/shared";

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** What a statement runs on: the database, or one transaction of it. */
export interface Queryable {
  /**
   * `name` makes a hot statement a named prepared statement on PostgreSQL (parsed and planned
   * once per connection); PGlite ignores it.
   */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], name?: string): Promise<QueryResult<T>>;
  /** Several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

/**
 * The engine's database, the same SQL on a PostgreSQL server (pg Pool) and on embedded
 * PGlite. Nothing outside store/ touches pg or PGlite.
 */
export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Whether `err` is a PostgreSQL error with this SQLSTATE (40001, 23505, or one of the engine's own checks'). */
export function hasSqlState(err: unknown, code: string): boolean {
  return (err as { code?: unknown } | null)?.code === code;
}

export interface OpenDbOptions {
  databaseUrl?: string | undefined;
  /** Where PGlite keeps its files when no databaseUrl is given. */
  dataDir: string;
  poolSize?: number;
}

export async function openDb(options: OpenDbOptions): Promise<Db> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options.poolSize ?? 10) : openPglite(options.dataDir);
}

/**
 * The engine's statements are written to be index-driven: every hot one finds its rows by
 * key. A named statement's generic plan, though, is made from the table statistics of the
 * moment — on a young or not-yet-analyzed table, a hash join over a sequential scan — and
 * kept while the table grows (on a fresh store, 6.3 M task rows read by sequential scans in
 * a 2,500-flow benchmark). `enable_seqscan=off` makes any index path win whatever the
 * statistics say (a table with no usable index is still scanned); `jit=off`: these
 * statements are far too short for JIT compilation to pay off.
 *
 * `plan_cache_mode=force_generic_plan`: left to choose, PostgreSQL compares the generic plan's
 * estimated cost with its custom plans' and, as enable_seqscan=off inflates the former, could
 * settle on custom plans and plan the write statement anew on every call (measured: 908 plans
 * in 3,418 calls of fm_write_changes over one 1,500-flow run, 1.2 ms each, as much PostgreSQL
 * time as the writes themselves). The generic plans are the ones hot-plans.test.ts checks.
 */
const ENGINE_SESSION_OPTIONS = "-c enable_seqscan=off -c jit=off -c plan_cache_mode=force_generic_plan";

function openPostgres(url: string, max: number): Db {
  const pool = new pg.Pool({ connectionString: url, max, application_name: "flowmonkey-engine", options: ENGINE_SESSION_OPTIONS });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on("error", () => undefined);
  const query = async <T>(client: pg.PoolClient, text: string, params?: unknown[], name?: string) => {
    const r = await client.query(name ? { name, text, values: params as unknown[] } : { text, values: params as unknown[] });
    return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
  };
  return {
    kind: "postgres",
    query: (text, params, name) => onPooledClient(pool, (client) => query(client, text, params, name)),
    exec: (text) => onPooledClient(pool, async (client) => void (await client.query(text))),
    async tx(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        const result = await fn({
          query: (text, params, name) => query(client, text, params, name),
          exec: async (text) => void (await client.query(text)),
        });
        await client.query("COMMIT");
        return result;
      } catch (err) {
        // A connection that cannot even roll back is not given to the next transaction.
        await client.query("ROLLBACK").catch((rollbackFailed: unknown) => void (broken = toError(rollbackFailed)));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

/**
 * Runs `fn` on a pooled connection and gives it back. pg-pool's own `pool.query` closes the
 * connection after any failed statement, a duplicate key included: every start redelivered or
 * sent twice (its optimistic insert fails with unique_violation, by design) cost a new
 * PostgreSQL backend — a fork, authentication, cold caches, every named statement planned
 * again. A statement the server refused leaves its connection ready for the next one; only a
 * failure that is not the server's answer (a broken socket, a timeout) retires it.
 */
async function onPooledClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await fn(client);
  } catch (err) {
    if (!(err instanceof pg.DatabaseError)) broken = toError(err);
    throw err;
  } finally {
    client.release(broken);
  }
}

async function openPglite(dataDir: string): Promise<Db> {
  const { PGlite } = await import("@electric-sql/pglite");
  const dir = resolve(dataDir, "pglite");
  mkdirSync(dir, { recursive: true });
  const db = await PGlite.create(dir);
  const query = async <T>(q: { query: typeof db.query }, text: string, params?: unknown[]) => {
    const r = await q.query<T>(text, params);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  };
  return {
    kind: "pglite",
    query: (text, params) => query(db, text, params),
    exec: async (text) => void (await db.exec(text)),
    tx: (fn) =>
      db.transaction((t) => fn({ query: (text, params) => query(t, text, params), exec: async (text) => void (await t.exec(text)) })),
    close: () => db.close(),
  };
}
