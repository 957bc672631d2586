import pg from "pg";
import { describe, expect, it } from "vitest";
import { createTestDatabase, useTestDatabase } from "../support/postgres.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("test databases", () => {
  const db = useTestDatabase();

  it("gives the file its own fresh database", async () => {
    expect(db.database.name).toMatch(/^fm_test_[a-z0-9]{10}$/);
    const [row] = await query<{ name: string }>(db.url, "SELECT current_database() AS name");
    expect(row?.name).toBe(db.database.name);
    await query(db.url, "CREATE TABLE probe (id int)");
    expect(await query(db.url, "SELECT * FROM probe")).toEqual([]);
  });

  it("drops a database even while a connection is still open", async () => {
    const other = await createTestDatabase();
    const client = new pg.Client({ connectionString: other.url });
    client.on("error", () => undefined);
    await client.connect();
    try {
      await other.drop();
      const rows = await query(db.url, `SELECT 1 FROM pg_database WHERE datname = '${other.name}'`);
      expect(rows).toHaveLength(0);
    } finally {
      await client.end().catch(() => undefined);
    }
  });

  it("fails with a clear message when the server is unreachable", async () => {
    await expect(createTestDatabase({ adminUrl: "postgres://postgres:secret@127.0.0.1:1/postgres" })).rejects.toThrow(
      /PostgreSQL is not reachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/postgres.*TEST_DATABASE_URL/s,
    );
  });
});
