/**
 * A fresh PostgreSQL database per test file: `fm_test_<random>` created on the
 * server named by TEST_DATABASE_URL, else DATABASE_URL, else the local default,
 * and dropped WITH (FORCE) afterwards. An unreachable server is an error with a
 * clear message, never a silent skip.
 *
 *   const db = useTestDatabase();
 *   it("...", async () => { const store = await openStore(db.url); ... });
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";

export const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** The server tests create their databases on. */
export function adminDatabaseUrl(): string {
  return process.env["TEST_DATABASE_URL"] || process.env["DATABASE_URL"] || DEFAULT_TEST_DATABASE_URL;
}

/** The URL with any password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable database URL>";
  }
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A server-side disconnect after connect must not crash the test process.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${redactUrl(url)}: ${(err as Error).message}. ` +
        "Start a server (Debian: `apt-get install postgresql`, then `pg_ctlcluster <version> main start`), " +
        "or point TEST_DATABASE_URL at one (e.g. postgres://postgres:secret@127.0.0.1:5432/postgres). " +
        "With FM_TEST_CONTAINERS=1 and Docker available, the test run starts one in a container.",
      { cause: err },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Throws a clear error when the test server cannot be reached or queried. */
export async function checkPostgres(url = adminDatabaseUrl()): Promise<string> {
  return withClient(url, async (client) => {
    const res = await client.query<{ version: string }>("SELECT current_setting('server_version') AS version");
    return res.rows[0]?.version ?? "unknown";
  });
}

export interface TestDatabase {
  /** Connection URL of the new database. */
  readonly url: string;
  readonly name: string;
  /** Drops the database, terminating any connection still open (WITH (FORCE)). Idempotent. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** Clone this database (CREATE DATABASE ... TEMPLATE), e.g. a migrated template; it must have no open connections. */
  template?: string;
  /** Server to create it on; default adminDatabaseUrl(). */
  adminUrl?: string;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function randomSuffix(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  for (const b of randomBytes(10)) out += alphabet[b % alphabet.length];
  return out;
}

export async function createTestDatabase(opts: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = opts.adminUrl ?? adminDatabaseUrl();
  const name = `fm_test_${randomSuffix()}`;
  await withClient(adminUrl, async (client) => {
    const template = opts.template === undefined ? "" : ` TEMPLATE ${quoteIdent(opts.template)}`;
    await client.query(`CREATE DATABASE ${quoteIdent(name)}${template}`);
  });
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  let dropped = false;
  return {
    url,
    name,
    async drop() {
      if (dropped) return;
      await withClient(adminUrl, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      });
      dropped = true;
    },
  };
}

export interface TestDatabaseFixture {
  /** URL of this file's database (valid from beforeAll on). */
  readonly url: string;
  readonly database: TestDatabase;
}

/** Creates a database in beforeAll and drops it in afterAll. */
export function useTestDatabase(opts: CreateTestDatabaseOptions = {}): TestDatabaseFixture {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(opts);
  });
  afterAll(async () => {
    await db?.drop();
    db = undefined;
  });
  const current = (): TestDatabase => {
    if (db === undefined) throw new Error("useTestDatabase(): the database is only available inside tests and hooks of this file");
    return db;
  };
  return {
    get url() {
      return current().url;
    },
    get database() {
      return current();
    },
  };
}

export interface PostgresContainer {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * A throwaway PostgreSQL 15 in Docker (testcontainers), only when FM_TEST_CONTAINERS=1.
 * Returns undefined when not requested, or — with a console message saying so — when
 * requested but no Docker engine answers; the local/TEST_DATABASE_URL server is used then.
 */
export async function startPostgresContainer(): Promise<PostgresContainer | undefined> {
  if (process.env["FM_TEST_CONTAINERS"] !== "1") return undefined;
  const tc = await import("testcontainers");
  try {
    await tc.getContainerRuntimeClient();
  } catch (err) {
    console.warn(
      `FM_TEST_CONTAINERS=1 but no Docker engine answered (${(err as Error).message}); ` +
        `not starting a PostgreSQL container, using ${redactUrl(adminDatabaseUrl())} instead.`,
    );
    return undefined;
  }
  const container = await new tc.GenericContainer("postgres:15-alpine")
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
    .withExposedPorts(5432)
    .withTmpFs({ "/var/lib/postgresql/data": "rw" })
    // The official image restarts once after initdb; the second message is the real one.
    .withWaitStrategy(tc.Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .withStartupTimeout(120_000)
    .start();
  const url = `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`;
  return {
    url,
    async stop() {
      await container.stop();
    },
  };
}
