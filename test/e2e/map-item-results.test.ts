/**
 * Map items' results on a real mesh, with the test playing the worker (no worker serves
 * "ghost"): only an item's current attempt counts, forged item results are recorded
 * RESULT_MISMATCH rejections, and an item nobody answers times out on the engine's own clock,
 * is retried per the step's policy, dead-lettered, and replayed by mapping again.
 */
import { encode, type ExecutionView, type TaskResult } from "@flowmonkey/shared";
import { jetstream } from "@nats-io/jetstream";
import { beforeAll, describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"] }],
  engine: { taskDeadlineGraceMs: 300, deadlineSweepIntervalMs: 100 },
}));

beforeAll(async () => {
  await mesh.putFlow({ id: "ghost-map", steps: [{ id: "d", handler: "ghost", timeoutMs: 120_000, map: { items: "{% input.items %}", concurrency: 2 }, input: { v: "{% item %}" } }] });
  await mesh.putFlow({
    id: "ghost-timeouts",
    steps: [{ id: "d", handler: "ghost", timeoutMs: 200, retry: { maxAttempts: 2, initialDelayMs: 10, jitter: false }, map: { items: "{% input.items %}" }, input: { v: "{% item %}" } }],
  });
});

const stepOf = (view: ExecutionView) => view.steps.find((s) => s.stepId === "d")!;

async function started(items: unknown[]): Promise<string> {
  const { executionId } = await mesh.api.start("ghost-map", { input: { items } });
  await waitFor(async () => stepOf(await mesh.api.get(executionId)).map?.running === Math.min(2, items.length) || undefined, { message: `${executionId}'s items dispatched` });
  return executionId;
}

function itemResult(executionId: string, index: number, patch: Partial<TaskResult> = {}): TaskResult {
  const at = new Date().toISOString();
  return {
    taskId: `${executionId}/d#1.${index}`,
    executionId,
    stepId: "d",
    attempt: 1,
    outcome: "success",
    output: { index },
    metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId: "w-1", region: "us-east-1" },
    ...patch,
  } as TaskResult;
}

async function rejectionCount(): Promise<number> {
  return (await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections")).rows[0]!.n;
}

/** Publishes results (stored by JetStream before this returns) and waits for `n` more rejections. */
async function publishAndAwaitRejections(results: TaskResult[]): Promise<Array<{ code: string; reason: string }>> {
  const before = await rejectionCount();
  const js = jetstream(mesh.nc);
  for (const r of results) await js.publish(mesh.names.subjects.results("us-east-1"), encode(r));
  await waitFor(async () => (await rejectionCount()) >= before + results.length || undefined, { message: `${results.length} rejections` });
  const { rows } = await mesh.engine.db.query<{ code: string; reason: string }>("SELECT code, reason FROM rejections ORDER BY id OFFSET $1", [before]);
  return rows;
}

describe("a map item's result", () => {
  it("forged ones are RESULT_MISMATCH and change nothing; the real ones complete the step in item order", async () => {
    const id = await started(["a", "b", "c"]);
    const rows = await publishAndAwaitRejections([
      itemResult(id, 0, { taskId: `${id}/d` }),
      itemResult(id, 9),
      itemResult(id, 0, { attempt: 2 }),
      itemResult(id, 0, { taskId: `${id}/d#2.0` }),
    ]);
    // Rejections of one batch are recorded together, not in arrival order.
    expect(rows).toHaveLength(4);
    expect(rows.map((r) => r.reason)).toEqual(expect.arrayContaining([
      expect.stringContaining("is a map step: its tasks are its items"),
      expect.stringContaining("has no item 9"),
      expect.stringContaining("item 0 has had 1 attempt(s); attempt 2 was never dispatched"),
      expect.stringContaining("run 2 never started"),
    ]));
    expect(rows.every((r) => r.code === "RESULT_MISMATCH")).toBe(true);
    expect(stepOf(await mesh.api.get(id)).map).toEqual({ total: 3, done: 0, failed: 0, running: 2 });

    const js = jetstream(mesh.nc);
    // Out of order, and item 1 twice: once applied, a second result of its attempt is ignored.
    // (Sent only after the first is applied: two results in flight at once race, and either may win.)
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(itemResult(id, 1)));
    // Item 2 is dispatched only once a slot frees.
    await waitFor(async () => stepOf(await mesh.api.get(id)).map?.done === 1 || undefined, { message: "item 1 applied" });
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(itemResult(id, 1, { output: { index: "again" } })));
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(itemResult(id, 2)));
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(itemResult(id, 0)));
    const done = await mesh.waitForStatus(id, "completed");
    expect(done.output).toEqual([{ index: 0 }, { index: 1 }, { index: 2 }]);
  });

  it("an item nobody answers times out on the engine's clock, is retried, dead-lettered, and its replay maps again", async () => {
    const { executionId } = await mesh.api.start("ghost-timeouts", { input: { items: ["x"] } });
    const failed = await mesh.waitForStatus(executionId, "failed", 20_000);
    expect(failed.error?.code).toBe("MAP_ITEMS_FAILED");
    expect(failed.error?.message).toContain("TASK_TIMEOUT");
    const { rows } = await mesh.engine.db.query<{ attempt: number; status: string }>("SELECT attempt, status FROM tasks WHERE task_id = $1 ORDER BY attempt", [`${executionId}/d#1.0`]);
    expect(rows).toEqual([{ attempt: 1, status: "failed" }, { attempt: 2, status: "failed" }]);

    const dead = await waitFor(async () => (await mesh.api.listDeadTasks()).deadTasks.find((t) => t.executionId === executionId), { message: "the item's dead letter" });
    expect(dead).toMatchObject({ id: `${executionId}/d#1.0:2`, stepId: "d", attempt: 2, reason: "attempts_exhausted" });
    const replay = await mesh.api.replayDeadTasks([dead.id]);
    expect(replay.replayed).toEqual([dead.id]);
    // Run 2 starts; it times out the same way (nobody serves ghost).
    await waitFor(async () => {
      const view = await mesh.api.get(executionId);
      return (stepOf(view).attempts === 2 && view.status === "failed") || undefined;
    }, { timeoutMs: 20_000, message: "run 2 to time out too" });
    const again = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE task_id = $1", [`${executionId}/d#2.0`]);
    expect(again.rows[0]!.n).toBe(2);
  });
});
