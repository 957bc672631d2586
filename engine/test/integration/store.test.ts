import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, createNames, provisionMesh } from "@flowmonkey/shared";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { createTestDatabase } from "../../../test/support/postgres.js";
import { openDb, type Db } from "../../src/store/db.js";
import { migrate, loadMigrations, SchemaTooNewError } from "../../src/store/migrate.js";
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
