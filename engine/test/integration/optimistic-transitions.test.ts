/**
 * Optimistic transitions (store/transition.ts): results are decided on executions read without
 * a lock and written in one statement that checks each changed row is still the version read.
 * These tests make another writer change the execution between the read and the write, on a
 * real PostgreSQL, and check that nothing of the stale decision is written and that
 * applyResults decides again and applies the result exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSubjects, type TaskResult } from "@flowmonkey/shared";
import { createTestDatabase } from "../../../test/support/postgres.js";
import { openDb, type Db, type Queryable } from "../../src/store/db.js";
import { migrate } from "../../src/store/migrate.js";
import { createFlowRegistry } from "../../src/flows/registry.js";
import { startExecutions } from "../../src/intake/start-execution.js";
import { applyResults } from "../../src/results/apply-result.js";
import { Changes } from "../../src/execution/changes.js";
import { ExecutionConflictError, transitionOptimistically, withExecutionCache, type TransitionDb } from "../../src/store/transition.js";
import { createExecutionCache } from "../../src/store/execution-cache.js";
import { taskIdOf } from "../../src/results/read-result.js";

const subjects = createSubjects("fm");
let db: Db;
let drop: () => Promise<void>;
const registry = () => createFlowRegistry(db);

beforeAll(async () => {
  const created = await createTestDatabase();
  drop = created.drop;
  db = await openDb({ databaseUrl: created.url, dataDir: "unused" });
  await migrate(db);
  await registry().put({ id: "two", steps: [{ id: "a", handler: "echo" }, { id: "b", handler: "echo", dependsOn: ["a"] }] });
});
afterAll(async () => {
  await db?.close();
  await drop?.();
});

async function startOne(on: TransitionDb = db): Promise<string> {
  const env = { db: on, registry: registry(), subjects, defaultRegion: "us-east-1" };
  const { outcomes } = await startExecutions(env, [{ flowId: "two", start: { input: {} }, startKey: `k-${Math.random()}`, subject: "test" }]);
  const outcome = outcomes[0]!;
  if (!("executionId" in outcome)) throw outcome.error;
  return outcome.executionId;
}

const count = async (sql: string, params: unknown[]) => Number((await db.query<{ n: string }>(sql, params)).rows[0]!.n);
/** Another writer: a new row version of the execution, as a replica's or a timeout's commit makes. */
const touch = (id: string) => db.query("UPDATE executions SET updated_at = now() WHERE id = $1", [id]);

function success(executionId: string, stepId: string): TaskResult {
  const at = new Date().toISOString();
  return {
    taskId: taskIdOf(executionId, stepId),
    executionId,
    stepId,
    attempt: 1,
    outcome: "success",
    output: { ok: true },
    metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId: "w1", region: "us-east-1" },
  };
}

describe("transitionOptimistically", () => {
  for (const path of ["one statement", "locked fallback"] as const) {
    it(`${path}: writes nothing when the execution changed after it was read`, async () => {
      const id = await startOne();
      const outboxBefore = await count("SELECT count(*) AS n FROM outbox", []);
      const out = new Changes();
      const attempt = transitionOptimistically(db, [id], async (executions) => {
        const exec = executions.get(id)!;
        exec.status = "failed";
        out.updated.set(id, exec);
        out.of(id).messages.push({ subject: "fm.test.stale", body: { stale: true } });
        // The locked fallback is taken when the changes need more than the write (here: a tenant lane to look at).
        if (path === "locked fallback") out.touchedLanes.push({ tenantId: "t", lane: "us-east-1/echo/normal" });
        await touch(id);
        return undefined;
      }, out);
      await expect(attempt).rejects.toBeInstanceOf(ExecutionConflictError);
      expect(await count("SELECT count(*) AS n FROM executions WHERE id = $1 AND status = 'running'", [id])).toBe(1);
      expect(await count("SELECT count(*) AS n FROM outbox", [])).toBe(outboxBefore);
    });

    it(`${path}: writes when nothing changed meanwhile`, async () => {
      const id = await startOne();
      const out = new Changes();
      const committed = await transitionOptimistically(db, [id], async (executions) => {
        const exec = executions.get(id)!;
        exec.status = "failed";
        out.updated.set(id, exec);
        out.of(id).messages.push({ subject: "fm.test.fresh", body: { fresh: true } });
        if (path === "locked fallback") out.touchedLanes.push({ tenantId: "t", lane: "us-east-1/echo/normal" });
        return "decided";
      }, out);
      expect(committed.value).toBe("decided");
      expect(committed.outbox?.messages.map((m) => m.subject)).toEqual(["fm.test.fresh"]);
      expect(await count("SELECT count(*) AS n FROM executions WHERE id = $1 AND status = 'failed'", [id])).toBe(1);
    });
  }
});

describe("applyResults under a concurrent change", () => {
  it("decides again on the fresh row and applies the result exactly once", async () => {
    const id = await startOne();
    let reads = 0;
    // The first read of the executions is followed by another writer's commit: the first decision is stale.
    const racing: Db = {
      ...db,
      query: async <T>(text: string, params?: unknown[], name?: string) => {
        const result = await db.query<T>(text, params, name);
        if (name === "fm_read_executions" && reads++ === 0) await touch(id);
        return result;
      },
    } as Db;
    const env = { db: racing as Db & Queryable, registry: registry(), subjects };
    const { outcomes, committed } = await applyResults(env, [success(id, "a")]);
    expect(reads).toBe(2);
    expect(outcomes).toEqual(["applied"]);
    // Step a completed once, step b dispatched once.
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1 AND step_id = 'a' AND status = 'completed'", [id])).toBe(1);
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1 AND step_id = 'b'", [id])).toBe(1);
    expect(committed.outbox?.messages.filter((m) => m.msgId).length).toBe(1);

    // The same result again (a redelivery): ignored, nothing new.
    const again = await applyResults({ ...env, db }, [success(id, "a")]);
    expect(again.outcomes).toEqual(["ignored"]);
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1", [id])).toBe(2);
  });
});

describe("the execution cache", () => {
  /** A cached engine's database that counts the execution reads it sends. */
  function cachedDb() {
    const reads = { n: 0 };
    const counting = {
      ...db,
      query: async <T>(text: string, params?: unknown[], name?: string) => {
        if (name === "fm_read_executions") reads.n++;
        return db.query<T>(text, params, name);
      },
    } as Db;
    return { on: withExecutionCache(counting, createExecutionCache()), reads };
  }
  const rejections = (id: string) => count("SELECT count(*) AS n FROM rejections WHERE reason LIKE '%' || $1 || '%'", [id]);

  it("decides the results of executions this process wrote without reading their rows", async () => {
    const { on, reads } = cachedDb();
    const id = await startOne(on);
    const env = { db: on, registry: registry(), subjects };
    expect((await applyResults(env, [success(id, "a")])).outcomes).toEqual(["applied"]);
    expect((await applyResults(env, [success(id, "b")])).outcomes).toEqual(["applied"]);
    expect(reads.n).toBe(0);
    expect(await count("SELECT count(*) AS n FROM executions WHERE id = $1 AND status = 'completed'", [id])).toBe(1);
  });

  it("decides again on the fresh row when another writer changed a cached execution", async () => {
    const { on, reads } = cachedDb();
    const id = await startOne(on);
    await touch(id);
    const { outcomes } = await applyResults({ db: on, registry: registry(), subjects }, [success(id, "a")]);
    expect(outcomes).toEqual(["applied"]);
    expect(reads.n).toBe(1);
    expect(await count("SELECT count(*) AS n FROM tasks WHERE execution_id = $1 AND step_id = 'b'", [id])).toBe(1);
  });

  it("does not reject a result on a stale cached state: the rejection is decided again", async () => {
    const { on, reads } = cachedDb();
    const id = await startOne(on);
    // Another engine applies a's result: b is dispatched there, while this cache still says only a is.
    await applyResults({ db, registry: registry(), subjects }, [success(id, "a")]);
    const { outcomes } = await applyResults({ db: on, registry: registry(), subjects }, [success(id, "b")]);
    expect(outcomes).toEqual(["applied"]);
    expect(reads.n).toBe(1);
    expect(await rejections(id)).toBe(0);
    expect(await count("SELECT count(*) AS n FROM executions WHERE id = $1 AND status = 'completed'", [id])).toBe(1);
  });

  it("decides again when a cached execution it left unchanged is gone, on the locked path too", async () => {
    const { on } = cachedDb();
    const id = await startOne(on);
    // Another engine ended it and retention forgot it; this cache still holds it running.
    await db.query("DELETE FROM executions WHERE id = $1", [id]);
    const out = new Changes();
    const attempt = transitionOptimistically(on, [id], async () => {
      out.of(id).messages.push({ subject: "fm.test.ignored", body: {} });
      // The locked path is taken when the changes need more than the write (a tenant lane to look at).
      out.touchedLanes.push({ tenantId: "t", lane: "us-east-1/echo/normal" });
      return undefined;
    }, out);
    await expect(attempt).rejects.toBeInstanceOf(ExecutionConflictError);
  });

  it("rejects a result from another region than its attempt's, though regions are not read first", async () => {
    const { on } = cachedDb();
    const id = await startOne(on);
    const forged = { ...success(id, "a"), metrics: { ...success(id, "a").metrics, region: "eu-west-1" }, fromWire: true };
    const { outcomes } = await applyResults({ db: on, registry: registry(), subjects }, [forged]);
    expect(outcomes).toEqual(["rejected"]);
    expect(await rejections(id)).toBe(1);
    // The real one still applies.
    expect((await applyResults({ db: on, registry: registry(), subjects }, [{ ...success(id, "a"), fromWire: true }])).outcomes).toEqual(["applied"]);
  });
});

describe("starts on the latest version this engine knew", () => {
  it("start the newest version once another replica registered one", async () => {
    const here = createFlowRegistry(db);
    const elsewhere = createFlowRegistry(db);
    await here.put({ id: "grows", steps: [{ id: "a", handler: "echo" }] });
    const start = async () => {
      const { outcomes } = await startExecutions({ db, registry: here, subjects, defaultRegion: "us-east-1" }, [
        { flowId: "grows", start: { input: {} }, startKey: `k-${Math.random()}`, subject: "test" },
      ]);
      const outcome = outcomes[0]!;
      if (!("executionId" in outcome)) throw outcome.error;
      return (await db.query<{ flow_version: number }>("SELECT flow_version FROM executions WHERE id = $1", [outcome.executionId])).rows[0]!.flow_version;
    };
    expect(await start()).toBe(1);
    expect(here.knownLatest(["grows"]).get("grows")?.version).toBe(1);
    await elsewhere.put({ id: "grows", steps: [{ id: "a", handler: "echo" }, { id: "b", handler: "echo", dependsOn: ["a"] }] });
    expect(await start()).toBe(2);
    expect(here.knownLatest(["grows"]).get("grows")?.version).toBe(2);
  });
});
