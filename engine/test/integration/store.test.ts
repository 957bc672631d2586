import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, createNames, provisionMesh } from "@flowmonkey/shared";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { createTestDatabase } from "../../../test/support/postgres.js";
import { openDb, type Db } from "../../src/store/db.js";
import { migrate, loadMigrations, SchemaTooNewError } from "../../src/store/migrate.js";
import { claimStaleCatchUps, insertWaitTokensSql, markCaughtUp } from "../../src/store/wait-tokens.js";
import { enqueueOutbox } from "../../src/store/outbox.js";
import { createRelay } from "../../src/outbox/relay.js";

const nats = useNatsServer();
let db: Db;
let drop: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  drop = created.drop;
  db = await openDb({ databaseUrl: created.url, dataDir: "unused" });
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

describe("migrations", () => {
  it("apply once, are a no-op when rerun, and refuse a database migrated by a newer engine", async () => {
    const first = await migrate(db);
    expect(first.applied).toEqual((await loadMigrations()).map((m) => m.name));
    expect((await migrate(db)).applied).toEqual([]);
    await db.query("INSERT INTO fm_schema_migrations (version, name) VALUES (9999, '9999_from_the_future')");
    await expect(migrate(db)).rejects.toBeInstanceOf(SchemaTooNewError);
    await expect(migrate(db)).rejects.toThrow(/version 9999.*upgrade flowmonkey-engine/);
    await db.query("DELETE FROM fm_schema_migrations WHERE version = 9999");
  });
});

/**
 * A database of its own migrated up to (not including) `version`, with one flow `f` and one
 * waiting execution `e1`: what a migration finds; `use` applies the rest and looks.
 */
async function withDatabaseBefore(version: number, use: (db: Db, all: Awaited<ReturnType<typeof loadMigrations>>) => Promise<void>): Promise<void> {
  const created = await createTestDatabase();
  const fresh = await openDb({ databaseUrl: created.url, dataDir: "unused" });
  try {
    const all = await loadMigrations();
    await migrate(fresh, all.filter((m) => m.version < version));
    await fresh.query("INSERT INTO flows (flow_id, version, definition, hash) VALUES ('f', 1, '{}', 'h')");
    await fresh.query(
      `INSERT INTO executions (id, start_key, flow_id, flow_version, status, steps, region, priority)
       VALUES ('e1', 'e1', 'f', 1, 'waiting', '{}', 'us-east-1', 'normal')`,
    );
    await use(fresh, all);
  } finally {
    await fresh.close();
    await created.drop();
  }
}

describe("wait catch-up records (0007)", () => {
  it("count waits recorded before the migration as caught up; new event waits start not caught up, until marked", async () => {
    await withDatabaseBefore(7, async (fresh, all) => {
      await fresh.query(
        `INSERT INTO wait_tokens (token, execution_id, step_id, attempt, event_name, created_at)
         VALUES ('old-event', 'e1', 'a', 1, 'go', now() - interval '1 hour'), ('old-token', 'e1', 'b', 1, NULL, now() - interval '1 hour')`,
      );
      expect((await migrate(fresh)).applied).toEqual(all.filter((m) => m.version >= 7).map((m) => m.name));
      const caughtUp = async () =>
        (await fresh.query<{ token: string; done: boolean }>("SELECT token, caught_up_at IS NOT NULL AS done FROM wait_tokens ORDER BY token")).rows;
      expect(await caughtUp()).toEqual([
        { token: "old-event", done: true },
        { token: "old-token", done: true },
      ]);
      // Nothing old for the sweep, however long ago it was recorded.
      expect(await claimStaleCatchUps(fresh, { graceMs: 0, backoffMs: 1000, maxBackoffMs: 1000, limit: 10 })).toEqual([]);

      const waits = [
        { token: "new-event", executionId: "e1", stepId: "c", attempt: 1, region: "eu-west-1", eventName: "go", eventFilter: "data.x = 1" },
        { token: "new-token", executionId: "e1", stepId: "d", attempt: 1 },
      ];
      await fresh.query(insertWaitTokensSql("$1"), [JSON.stringify(waits)]);
      expect(await caughtUp()).toEqual([
        { token: "new-event", done: false },
        { token: "new-token", done: true },
        { token: "old-event", done: true },
        { token: "old-token", done: true },
      ]);
      // Within its grace the sweep leaves it to the engine that recorded it.
      expect(await claimStaleCatchUps(fresh, { graceMs: 60_000, backoffMs: 1000, maxBackoffMs: 1000, limit: 10 })).toEqual([]);
      // Past it, one claim takes it (the next one is backed off), with what its catch-up needs.
      const claims = await Promise.all([0, 1, 2].map(() => claimStaleCatchUps(fresh, { graceMs: 0, backoffMs: 60_000, maxBackoffMs: 60_000, limit: 10 })));
      expect(claims.flat()).toEqual([
        { token: "new-event", executionId: "e1", stepId: "c", attempt: 1, region: "eu-west-1", eventName: "go", eventFilter: "data.x = 1", afterSeq: null, tries: 1 },
      ]);
      // Marking names the attempt: another attempt's catch-up does not count for it.
      await markCaughtUp(fresh, [{ token: "new-event", attempt: 2 }]);
      expect((await caughtUp())[0]).toEqual({ token: "new-event", done: false });
      await markCaughtUp(fresh, [{ token: "new-event", attempt: 1 }]);
      expect((await caughtUp())[0]).toEqual({ token: "new-event", done: true });
      const { rows } = await fresh.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE indexname = 'wait_tokens_catch_up'");
      expect(rows[0]?.indexdef).toMatch(/WHERE \(\(caught_up_at IS NULL\) AND \(event_name IS NOT NULL\)\)/);
    });
  });
});

describe("wait regions (0018)", () => {
  it("gives a wait recorded before the migration the region of the attempt that parked it", async () => {
    await withDatabaseBefore(18, async (fresh, all) => {
      // Step a parked on its second attempt, in eu-west-1 (its first ran in us-east-1); b has no attempt row.
      await fresh.query(
        `INSERT INTO tasks (task_id, attempt, execution_id, step_id, handler, region, status, dispatched_at)
         VALUES ('e1/a', 1, 'e1', 'a', 'h', 'us-east-1', 'failed', now()), ('e1/a', 2, 'e1', 'a', 'h', 'eu-west-1', 'waiting', now())`,
      );
      await fresh.query(
        `INSERT INTO wait_tokens (token, execution_id, step_id, attempt, event_name)
         VALUES ('t-a', 'e1', 'a', 2, 'go'), ('t-b', 'e1', 'b', 1, 'go')`,
      );
      expect((await migrate(fresh)).applied).toEqual(all.filter((m) => m.version >= 18).map((m) => m.name));
      const { rows } = await fresh.query<{ token: string; region: string | null }>("SELECT token, region FROM wait_tokens ORDER BY token");
      expect(rows).toEqual([
        { token: "t-a", region: "eu-west-1" },
        { token: "t-b", region: null },
      ]);
    });
  });
});

describe("outbox", () => {
  it("publishes a row whose committer died before publishing, exactly once per task", async () => {
    await migrate(db);
    const prefix = uniquePrefix();
    const names = createNames(prefix);
    const nc = await connect({ servers: nats.url });
    try {
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 5000 });
      const subject = names.subjects.task("us-east-1", "echo", "normal");
      const messages = [{ subject, body: { hello: "world" }, msgId: "exec-1/a:1" }];
      // Committed with a claim that has already run out: its process is gone.
      await db.tx((q) => enqueueOutbox(q, messages, { claimMs: 0 }));
      // The same row committed twice (two sweeps racing, or a replay) must still store one task.
      await db.tx((q) => enqueueOutbox(q, messages, { claimMs: 0 }));
      const relay = createRelay({ db, nc, log: createLogger({ name: "t", level: "silent" }) });
      expect(await relay.sweepOnce()).toBe(2);
      await relay.close();
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(names.streams.tasks);
      expect(info.state.messages).toBe(1);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox");
      expect(rows[0]!.n).toBe(0);
    } finally {
      await nc.close();
    }
  });

  it("leaves a row that is still claimed by a live committer alone", async () => {
    const prefix = uniquePrefix();
    const nc = await connect({ servers: nats.url });
    try {
      const names = createNames(prefix);
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 5000 });
      await db.tx((q) => enqueueOutbox(q, [{ subject: names.subjects.event("x"), body: {} }], { claimMs: 60_000 }));
      const relay = createRelay({ db, nc, log: createLogger({ name: "t", level: "silent" }) });
      expect(await relay.sweepOnce()).toBe(0);
      await relay.close();
      await db.query("DELETE FROM outbox");
    } finally {
      await nc.close();
    }
  });
});
