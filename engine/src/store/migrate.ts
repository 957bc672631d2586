import { readdir, readFile } from "node:fs/promises";
import type { Db } from "./db.js";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
/** Arbitrary, fixed: the advisory lock that serializes migrations across engine replicas. */
const MIGRATION_LOCK_ID = 4_242_001;

export class SchemaTooNewError extends Error {
  override readonly name = "SchemaTooNewError";
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: await readFile(new URL(file, MIGRATIONS_DIR), "utf8"),
    })),
  );
}

/**
 * Applies numbered migrations in one transaction under an advisory lock, so replicas that
 * start together migrate once. A database migrated by a newer engine is refused, with a
 * message, instead of being run by code that does not know its schema.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<{ applied: string[]; version: number }> {
  const all = migrations ?? (await loadMigrations());
  const latest = all.at(-1)?.version ?? 0;
  return db.tx(async (q) => {
    await q.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_ID]);
    await q.query(
      `CREATE TABLE IF NOT EXISTS fm_schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await q.query<{ version: number }>("SELECT version FROM fm_schema_migrations");
    const done = new Set(rows.map((r) => r.version));
    const current = Math.max(0, ...done);
    if (current > latest) {
      throw new SchemaTooNewError(
        `the database schema is at version ${current}, but this engine knows migrations up to ${latest}; ` +
          `upgrade flowmonkey-engine (or point DATABASE_URL at another database)`,
      );
    }
    const applied: string[] = [];
    // Every migration not applied yet, not only those above the highest: numbers are reserved
    // per feature, so one branch's 0005 can land before another's 0004 and both must run.
    for (const m of all.filter((m) => !done.has(m.version))) {
      await q.exec(m.sql);
      await q.query("INSERT INTO fm_schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      applied.push(m.name);
    }
    return { applied, version: Math.max(current, latest) };
  });
}
