/**
 * store/db.ts on PostgreSQL: a statement the server refuses (a duplicate start's unique
 * violation, a failed transaction) leaves its pooled connection in use — the next statement
 * runs on the same backend — while a connection the server ended is replaced.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../../test/support/postgres.js";
import { hasSqlState, openDb, type Db } from "../../src/store/db.js";

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase();
  // One connection: every statement runs on the same backend unless the pool replaces it.
  db = await openDb({ databaseUrl: database.url, dataDir: "unused", poolSize: 1 });
  await db.exec("CREATE TABLE starts (id text PRIMARY KEY)");
  await db.query("INSERT INTO starts (id) VALUES ('s-1')");
});

afterAll(async () => {
  await db?.close();
  await database?.drop();
});

const backend = async () => (await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;

describe("the engine's PostgreSQL pool", () => {
  it("keeps the connection through statements the server refused, named or not, in a transaction or not", async () => {
    const before = await backend();
    for (let i = 0; i < 5; i++) {
      const refused = await db.query("INSERT INTO starts (id) VALUES ($1)", ["s-1"], "fm_test_insert_start").catch((err: unknown) => err);
      expect(hasSqlState(refused, "23505")).toBe(true);
      const unnamed = await db.query("INSERT INTO starts (id) VALUES ($1)", ["s-1"]).catch((err: unknown) => err);
      expect(hasSqlState(unnamed, "23505")).toBe(true);
    }
    const inTx = await db.tx((q) => q.query("INSERT INTO starts (id) VALUES ($1)", ["s-1"])).catch((err: unknown) => err);
    expect(hasSqlState(inTx, "23505")).toBe(true);
    expect(await backend()).toBe(before);
    // The named statement is still prepared on that connection and still works.
    await db.query("INSERT INTO starts (id) VALUES ($1)", ["s-2"], "fm_test_insert_start");
    expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM starts")).rows[0]!.n).toBe(2);
  });

  it("replaces a connection the server ended", async () => {
    const ended = await backend();
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query("SELECT pg_terminate_backend($1)", [ended]);
    } finally {
      await admin.end();
    }
    // The first statement may meet the dead connection; a later one runs on a new backend.
    let next: number | undefined;
    for (let i = 0; i < 3 && next === undefined; i++) next = await backend().catch(() => undefined);
    expect(next).toBeDefined();
    expect(next).not.toBe(ended);
  });
});
