import { jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encode, type ExecutionEvent } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { collect, waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ concurrency: 8 }] });
  await mesh.putFlow({
    id: "hello",
    steps: [
      { id: "greet", handler: "transform", input: { expression: "'Hello, ' & name & '!'", data: "{% input %}" } },
      { id: "shout", handler: "echo", input: { text: "{% steps.greet %}" } },
    ],
    output: "{% steps.shout.text %}",
  });
});
afterAll(async () => {
  await mesh?.close();
});

describe("starting flows", () => {
  it("starts a flow from a plain core publish without headers and completes it", async () => {
    const sub = mesh.nc.subscribe(mesh.names.subjects.execOfFlow("hello"));
    mesh.nc.publish(mesh.names.subjects.flowStart("hello"), encode({ input: { name: "world" } }));
    const [started] = await collect(sub, 1);
    const event = JSON.parse(new TextDecoder().decode(started!.data)) as ExecutionEvent;
    sub.unsubscribe();
    expect(event.type).toBe("started");
    const view = await mesh.waitForStatus(event.executionId, "completed");
    expect(view.output).toBe("Hello, world!");
    expect(view.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
      ["greet", "completed", 1],
      ["shout", "completed", 1],
    ]);
  });

  it("answers a request on fm.api.flows.start.<flow> with the persisted executionId", async () => {
    const reply = await mesh.nc.request(mesh.names.subjects.apiFlowStart("hello"), encode({ input: { name: "req" } }), { timeout: 5000 });
    const { executionId } = JSON.parse(new TextDecoder().decode(reply.data)) as { executionId: string };
    expect(executionId).toMatch(/^[A-Za-z0-9_-]+$/);
    const view = await mesh.api.get(executionId);
    expect(view.flowId).toBe("hello");
    expect((await mesh.waitForStatus(executionId, "completed")).output).toBe("Hello, req!");
  });

  it("creates one execution per start, however often the same start arrives", async () => {
    const start = encode({ input: { name: "once" }, executionId: "dedupe-1" });
    for (let i = 0; i < 3; i++) mesh.nc.publish(mesh.names.subjects.flowStart("hello"), start);
    const h = headers();
    h.set("Nats-Msg-Id", "start-abc");
    for (let i = 0; i < 2; i++) mesh.nc.publish(mesh.names.subjects.flowStart("hello"), encode({ input: { name: "msgid" } }), { headers: h });
    await mesh.waitForStatus("dedupe-1", "completed");
    await waitFor(async () => (await mesh.api.list({ flowId: "hello", limit: 500 })).executions.some((e) => e.status === "completed"));
    const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM executions WHERE id = 'dedupe-1'");
    expect(rows[0]!.n).toBe(1);
    const again = await mesh.api.start("hello", { input: { name: "once" }, executionId: "dedupe-1" });
    expect(again).toEqual({ executionId: "dedupe-1", created: false });
  });
});

describe("flow shapes", () => {
  it("runs DAG branches in parallel and joins them", async () => {
    await mesh.putFlow({
      id: "fanout",
      steps: [
        { id: "a", handler: "echo", input: { n: "{% input.n %}" } },
        { id: "b", handler: "delay", dependsOn: ["a"], input: { ms: 700 } },
        { id: "c", handler: "delay", dependsOn: ["a"], input: { ms: 700 } },
        { id: "d", handler: "echo", dependsOn: ["b", "c"], input: { n: "{% steps.a.n + 1 %}" } },
      ],
    });
    const { executionId } = await mesh.api.start("fanout", { input: { n: 1 } });
    const view = await mesh.waitForStatus(executionId, "completed");
    expect(view.output).toEqual({ n: 2 });
    // The workers' own start/finish times of b and c: the intervals must overlap.
    const { rows } = await mesh.engine.db.query<{ step_id: string; started_at: Date; completed_at: Date }>(
      "SELECT step_id, started_at, completed_at FROM tasks WHERE execution_id = $1 AND step_id IN ('b', 'c') ORDER BY step_id",
      [executionId],
    );
    const [b, c] = rows.map((r) => ({ start: new Date(r.started_at).getTime(), end: new Date(r.completed_at).getTime() }));
    expect(b!.start).toBeLessThan(c!.end);
    expect(c!.start).toBeLessThan(b!.end);
  });

  it("skips a branch whose `when` is false; its dependents still run", async () => {
    await mesh.putFlow({
      id: "branching",
      steps: [
        { id: "check", handler: "echo", input: { amount: "{% input.amount %}" } },
        { id: "big", handler: "echo", dependsOn: ["check"], when: "{% steps.check.amount > 100 %}", input: { size: "big" } },
        { id: "small", handler: "echo", dependsOn: ["check"], when: "{% steps.check.amount <= 100 %}", input: { size: "small" } },
        { id: "done", handler: "echo", dependsOn: ["big", "small"], input: { big: "{% steps.big %}", small: "{% steps.small %}" } },
      ],
    });
    const { executionId } = await mesh.api.start("branching", { input: { amount: 5 } });
    const view = await mesh.waitForStatus(executionId, "completed");
    const status = Object.fromEntries(view.steps.map((s) => [s.stepId, s.status]));
    expect(status).toEqual({ check: "completed", big: "skipped", small: "completed", done: "completed" });
    expect(view.output).toEqual({ big: null, small: { size: "small" } });
  });

  it("fails the execution when a step fails, unless the step says continue", async () => {
    await mesh.putFlow({
      id: "failing",
      steps: [
        { id: "boom", handler: "fail", input: { code: "CARD_DECLINED", message: "declined", retryable: false } },
        { id: "after", handler: "echo", input: {} },
      ],
    });
    const failed = await mesh.api.start("failing", { input: {} });
    const view = await mesh.waitForStatus(failed.executionId, "failed");
    expect(view.error).toMatchObject({ code: "CARD_DECLINED", message: "declined" });
    expect(view.steps.map((s) => s.status)).toEqual(["failed", "cancelled"]);

    await mesh.putFlow({
      id: "tolerant",
      steps: [
        { id: "boom", handler: "fail", input: { code: "NOPE", message: "no", retryable: false }, onFailure: "continue" },
        { id: "after", handler: "echo", input: { ok: true } },
      ],
    });
    const tolerant = await mesh.api.start("tolerant", { input: {} });
    const done = await mesh.waitForStatus(tolerant.executionId, "completed");
    expect(done.steps.map((s) => s.status)).toEqual(["failed", "completed"]);
  });

  it("retries a retryable failure per the step's policy, with numbered attempts", async () => {
    await mesh.putFlow({
      id: "retrying",
      steps: [
        {
          id: "flaky",
          handler: "fail",
          input: { code: "UPSTREAM_DOWN", message: "try later", retryable: true },
          retry: { maxAttempts: 3, backoff: "fixed", initialDelayMs: 50, jitter: false },
        },
      ],
    });
    const { executionId } = await mesh.api.start("retrying", { input: {} });
    const view = await mesh.waitForStatus(executionId, "failed");
    expect(view.steps[0]).toMatchObject({ status: "failed", attempts: 3, error: { code: "UPSTREAM_DOWN" } });
    const { rows } = await mesh.engine.db.query<{ attempt: number; status: string }>(
      "SELECT attempt, status FROM tasks WHERE execution_id = $1 ORDER BY attempt",
      [executionId],
    );
    expect(rows).toEqual([
      { attempt: 1, status: "failed" },
      { attempt: 2, status: "failed" },
      { attempt: 3, status: "failed" },
    ]);
  });

  it("cancels a running execution; the late result of its step is ignored", async () => {
    await mesh.putFlow({ id: "slow", steps: [{ id: "wait", handler: "delay", input: { ms: 800 } }, { id: "next", handler: "echo" }] });
    const jsm = await jetstreamManager(mesh.nc);
    const resultsBefore = (await jsm.streams.info(mesh.names.streams.results)).state.last_seq;
    const { executionId } = await mesh.api.start("slow", { input: {} });
    // Dispatched, or already started by the worker ("running").
    await waitFor(async () => ["dispatched", "running"].includes((await mesh.api.get(executionId)).steps[0]!.status));
    expect(await mesh.api.cancel(executionId)).toEqual({ executionId, status: "cancelled" });
    expect(await mesh.api.cancel(executionId)).toEqual({ executionId, status: "cancelled" });
    // The step's result still comes (the worker stopped its handler: EXECUTION_ENDED; or it took
    // the task after the cancel and ran it)...
    await waitFor(async () => ((await jsm.streams.info(mesh.names.streams.results)).state.last_seq > resultsBefore ? true : undefined), {
      message: "the cancelled step's result",
    });
    // ...and once the engine has taken every result, nothing about the execution changed.
    await waitFor(async () => {
      const info = await jsm.consumers.info(mesh.names.streams.results, mesh.names.consumers.results);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    const view = await mesh.api.get(executionId);
    expect(view.status).toBe("cancelled");
    expect(view.steps.map((s) => s.status)).toEqual(["cancelled", "cancelled"]);
    const { rows } = await mesh.engine.db.query<{ status: string }>("SELECT status FROM tasks WHERE execution_id = $1", [executionId]);
    expect(rows).toEqual([{ status: "dispatched" }]);
    await expect(mesh.api.cancel("no-such-execution")).rejects.toMatchObject({ code: "EXECUTION_NOT_FOUND" });
  });
});

describe("pushing a flow", () => {
  it("warns, without refusing, about a handler no live worker serves, and is quiet when one does", async () => {
    // The test worker serves every built-in in us-east-1; its registry entry is live once it started.
    const served = await waitFor(async () => {
      const reply = await mesh.api.putFlow({ id: "served", steps: [{ id: "a", handler: "echo" }] });
      return reply.warnings === undefined ? reply : undefined;
    });
    expect(served).toMatchObject({ flowId: "served", created: true });
    const unserved = await mesh.api.putFlow({ id: "unserved", steps: [{ id: "a", handler: "echo" }, { id: "b", handler: "nosuch" }] });
    expect(unserved.created).toBe(true);
    expect(unserved.warnings).toEqual([expect.stringMatching(/^step b: no live worker serves handler nosuch in any region/)]);
    const elsewhere = await mesh.api.putFlow({ id: "elsewhere", steps: [{ id: "a", handler: "echo", region: "eu-west-1" }] });
    expect(elsewhere.warnings).toEqual([expect.stringMatching(/^step a: no live worker serves handler echo in eu-west-1 \(it is served in us-east-1\)/)]);
  });
});
