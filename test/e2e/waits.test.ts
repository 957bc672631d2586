/**
 * Wait / resume and pause, against a real nats-server and PostgreSQL (engine and workers in
 * this process):
 *  - a step parked on a token holds no worker slot and resumes with the payload it is given;
 *  - a step waiting for an event resumes on the first event its filter accepts, not before;
 *  - `waitUntil` passing takes the timeout path, also when the engine that parked it is gone;
 *  - a stateful handler pauses mid-way, frees its slot, and continues from its checkpoint;
 *  - cancelling a waiting execution retires its token.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { createLogger, encode, FmError, type ExecutionView } from "@flowmonkey/shared";
import { createEngine } from "@flowmonkey/engine";
import { defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

/** Works through `items`, pausing once half-way until an event says go; counts each item it does. */
const itemsDone = new Map<string, number[]>();
const pausing = defineHandler({
  type: "pausing",
  version: "1",
  input: z.object({ items: z.number().int() }),
  async execute(ctx) {
    const saved = (await ctx.checkpoint.load()) as { next: number } | undefined;
    const done = itemsDone.get(ctx.task.executionId) ?? [];
    itemsDone.set(ctx.task.executionId, done);
    for (let i = saved?.next ?? 0; i < ctx.input.items; i++) {
      if (i === ctx.input.items / 2 && !ctx.resume) {
        await ctx.pause.wait({ reason: "half-way: waiting for go", state: { next: i }, resumeOn: { event: "go", filter: `data.executionId = '${ctx.task.executionId}'` } });
      }
      done.push(i);
    }
    return { resumedFrom: saved?.next ?? null, reason: ctx.resume?.reason ?? null, waitedMs: ctx.resume?.waitedMs ?? null };
  },
});

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["wait", "echo"], concurrency: 4 }],
  engine: { waitTimerIntervalMs: 200 },
}));

const stepOf = (view: ExecutionView, stepId: string) => view.steps.find((s) => s.stepId === stepId)!;

describe("wait and resume", () => {
  it("a step parked on a token holds no worker and resumes with the payload it is given", async () => {
    await mesh.putFlow({
      id: "approval",
      steps: [
        { id: "approve", handler: "wait", input: { resumeToken: "{% 'approve-' & execution.id %}", reason: "a human approves" } },
        { id: "after", handler: "echo", input: { approved: "{% steps.approve %}" } },
      ],
    });
    const { executionId } = await mesh.api.start("approval", { executionId: "appr-1", input: {} });
    const parked = await mesh.waitForStatus(executionId, "waiting");
    const approve = stepOf(parked, "approve");
    expect(approve.status).toBe("waiting");
    expect(approve.wait).toMatchObject({ resumeToken: "approve-appr-1", reason: "a human approves" });
    // The attempt ended with the wait: nothing is held by the worker.
    await waitFor(() => mesh.engine.db.query("SELECT 1 FROM tasks WHERE execution_id = $1 AND status = 'waiting'", [executionId]).then((r) => r.rows.length === 1));

    const reply = await mesh.api.resume("approve-appr-1", { by: "ada", ok: true });
    expect(reply).toEqual({ executionId, stepId: "approve", status: "running" });
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.output).toEqual({ approved: { by: "ada", ok: true } });
    expect(stepOf(done, "approve").history?.map((a) => a.status)).toEqual(["waiting", "completed"]);

    // A token resumes once.
    const again = await mesh.api.resume("approve-appr-1", {}).catch((err: unknown) => err);
    expect(again).toBeInstanceOf(FmError);
    expect((again as FmError).code).toBe("RESUME_TOKEN_NOT_FOUND");
    const { rows } = await mesh.engine.db.query<{ paused_ms: number; active_ms: number }>(
      "SELECT paused_ms, active_ms FROM tasks WHERE execution_id = $1 AND step_id = 'approve' ORDER BY attempt",
      [executionId],
    );
    expect(rows[0]!.paused_ms).toBeGreaterThanOrEqual(0);
    expect(rows[0]!.active_ms).toBeGreaterThanOrEqual(0);
  });

  it("a step waiting for an event resumes on the first event its filter accepts", async () => {
    await mesh.putFlow({ id: "payment", steps: [{ id: "paid", handler: "wait", input: { event: "order.paid", filter: "data.orderId = 'o-2'" } }] });
    const { executionId } = await mesh.api.start("payment", { input: {} });
    await mesh.waitForStatus(executionId, "waiting");
    const js = jetstream(mesh.nc);
    await js.publish(mesh.names.subjects.event("order.paid"), encode({ data: { orderId: "o-1" } }));
    await js.publish(mesh.names.subjects.event("order.shipped"), encode({ data: { orderId: "o-2" } }));
    // A plain core publish (`nats pub fm.events.order.paid ...`) works too: FM_EVENTS captures it.
    mesh.nc.publish(mesh.names.subjects.event("order.paid"), encode({ data: { orderId: "o-2", amount: 42 } }));
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.output).toEqual({ orderId: "o-2", amount: 42 });
  });

  it("waitUntil passing takes the timeout path, also when the engine that parked the step is gone", async () => {
    await mesh.putFlow({
      id: "deadline",
      steps: [
        { id: "hold", handler: "wait", input: { timeoutMs: 1500 }, onFailure: "continue" },
        { id: "after", handler: "echo", input: { timedOut: "{% $exists(steps.hold) = false %}" } },
      ],
    });
    const { executionId } = await mesh.api.start("deadline", { input: {} });
    await mesh.waitForStatus(executionId, "waiting");
    // The engine that parked it stops; a new one, which never saw the wait, fires its timer.
    await mesh.engine.close();
    const nc = await connect({ servers: nats.url });
    const replacement = createEngine({ nc, log: createLogger({ name: "test", level: "silent" }), prefix: mesh.prefix, databaseUrl: pg.url, waitTimerIntervalMs: 200 });
    try {
      await replacement.start();
      const done = await mesh.waitForStatus(executionId, "completed", 20_000);
      expect(stepOf(done, "hold")).toMatchObject({ status: "failed", error: { code: "WAIT_TIMEOUT" } });
      expect(stepOf(done, "after").status).toBe("completed");
      const { rows } = await replacement.db.query("SELECT 1 FROM wait_tokens WHERE execution_id = $1", [executionId]);
      expect(rows).toHaveLength(0);
    } finally {
      await replacement.close();
      await nc.close();
    }
  });
});

describe("pause", () => {
  it("a stateful handler pauses half-way, frees its slot, and continues from its checkpoint", async () => {
    // The earlier test replaced the mesh's engine; this one starts its own for a clean slate.
    const nc = await connect({ servers: nats.url });
    const engine = createEngine({ nc, log: createLogger({ name: "test", level: "silent" }), prefix: mesh.prefix, databaseUrl: pg.url, waitTimerIntervalMs: 200 });
    await engine.start();
    const worker = await mesh.startWorker({ handlers: [pausing], concurrency: 1 });
    try {
      await mesh.putFlow({ id: "crunch", steps: [{ id: "work", handler: "pausing", input: { items: 10 } }] });
      const { executionId } = await mesh.api.start("crunch", { input: {} });
      const parked = await mesh.waitForStatus(executionId, "waiting");
      expect(stepOf(parked, "work").wait?.reason).toBe("half-way: waiting for go");
      // Paused: the only slot of the only worker serving `pausing` is free again.
      await waitFor(() => worker.stats().running === 0, { message: "the paused task's slot to be freed" });

      await jetstream(mesh.nc).publish(mesh.names.subjects.event("go"), encode({ data: { executionId: "someone-else" } }));
      await jetstream(mesh.nc).publish(mesh.names.subjects.event("go"), encode({ data: { executionId } }));
      const done = await mesh.waitForStatus(executionId, "completed");
      expect(done.output).toMatchObject({ resumedFrom: 5, reason: "event" });
      // Items 0-4 before the pause, 5-9 after it: none done twice.
      expect(itemsDone.get(executionId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const { rows } = await engine.db.query<{ attempt: number; status: string; paused_ms: number | null; tier: string | null }>(
        "SELECT attempt, status, paused_ms, tier FROM tasks WHERE execution_id = $1 ORDER BY attempt",
        [executionId],
      );
      expect(rows.map((r) => r.status)).toEqual(["waiting", "completed"]);
      expect(rows[0]!.paused_ms).toBeGreaterThan(0);
      expect(rows[1]!.paused_ms).toBeNull();
      expect(["small", "medium", "large"]).toContain(rows[0]!.tier);
    } finally {
      await worker.close();
      await engine.close();
      await nc.close();
    }
  });

  it("cancelling a waiting execution retires its token", async () => {
    const nc = await connect({ servers: nats.url });
    const engine = createEngine({ nc, log: createLogger({ name: "test", level: "silent" }), prefix: mesh.prefix, databaseUrl: pg.url });
    await engine.start();
    try {
      await mesh.putFlow({ id: "cancelled-wait", steps: [{ id: "hold", handler: "wait", input: { resumeToken: "{% 'hold-' & execution.id %}" } }] });
      const { executionId } = await mesh.api.start("cancelled-wait", { executionId: "cw-1", input: {} });
      await mesh.waitForStatus(executionId, "waiting");
      await mesh.api.cancel(executionId);
      const { rows } = await engine.db.query("SELECT 1 FROM wait_tokens WHERE token = 'hold-cw-1'");
      expect(rows).toHaveLength(0);
      const err = await mesh.api.resume("hold-cw-1").catch((e: unknown) => e);
      expect((err as FmError).code).toBe("RESUME_TOKEN_NOT_FOUND");
    } finally {
      await engine.close();
      await nc.close();
    }
  });
});
