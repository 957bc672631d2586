/**
 * Sub-flows: a step with `flow:` starts a child execution with its input, holds no worker while
 * the child runs, and completes with the child's output or fails with its error; cancelling the
 * parent cancels the child; nesting is bounded. Real nats-server and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FmError } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;

beforeAll(async () => {
  // One slot: a parent holding a worker while its child runs would deadlock here.
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ concurrency: 1 }] });
  await mesh.putFlow({ id: "greet", steps: [{ id: "say", handler: "echo", input: { text: "{% 'hello ' & input.name %}" } }] });
  await mesh.putFlow({
    id: "parent",
    steps: [
      { id: "pre", handler: "echo", input: { name: "{% input.name %}" } },
      { id: "child", flow: "greet", input: { name: "{% steps.pre.name %}" } },
      { id: "post", handler: "echo", input: { got: "{% steps.child %}" } },
    ],
  });
  await mesh.putFlow({ id: "breaks", steps: [{ id: "boom", handler: "fail", input: { code: "CHILD_BROKE", message: "nope" } }] });
  await mesh.putFlow({ id: "calls-breaks", steps: [{ id: "child", flow: "breaks" }] });
  await mesh.putFlow({ id: "naps", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
  await mesh.putFlow({ id: "calls-naps", steps: [{ id: "child", flow: "naps" }] });
  await mesh.putFlow({ id: "recurse", steps: [{ id: "again", flow: "recurse" }] });
});
afterAll(async () => {
  await mesh?.close();
});

describe("sub-flows", () => {
  it("a child runs with the step's input; its output is the step's; the child knows its parent", async () => {
    const { executionId } = await mesh.api.start("parent", { input: { name: "ada" } });
    const done = await mesh.waitForStatus(executionId, "completed", 20_000);
    expect(done.output).toEqual({ got: { text: "hello ada" } });
    const step = done.steps.find((s) => s.stepId === "child")!;
    expect(step).toMatchObject({ flow: "greet", handler: "subflow", status: "completed", output: { text: "hello ada" } });
    const child = await mesh.api.get(step.childExecutionId!);
    expect(child).toMatchObject({ flowId: "greet", status: "completed", parentExecutionId: executionId, parentStepId: "child", input: { name: "ada" } });
  });

  it("a failed child fails its step with SUBFLOW_FAILED, carrying the child's error", async () => {
    const { executionId } = await mesh.api.start("calls-breaks", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed", 20_000);
    expect(failed.error?.code).toBe("SUBFLOW_FAILED");
    expect(failed.error?.message).toContain("CHILD_BROKE");
  });

  it("cancelling the parent cancels its running child", async () => {
    const { executionId } = await mesh.api.start("calls-naps", { input: {} });
    const childId = await waitFor(async () => {
      const step = (await mesh.api.get(executionId)).steps[0]!;
      if (!step.childExecutionId) return undefined;
      return (await mesh.api.get(step.childExecutionId).catch(() => undefined))?.status === "running" ? step.childExecutionId : undefined;
    }, { timeoutMs: 15_000, message: "the child running" });
    await mesh.api.cancel(executionId);
    const child = await mesh.waitForStatus(childId, "cancelled", 15_000);
    expect(child.steps[0]!.status).toBe("cancelled");
    expect((await mesh.api.get(executionId)).steps[0]!.status).toBe("cancelled");
  });

  it("nesting stops at 10 levels with SUBFLOW_TOO_DEEP", async () => {
    const { executionId } = await mesh.api.start("recurse", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed", 30_000);
    // The error bubbles up through every level.
    expect(failed.error?.code).toBe("SUBFLOW_FAILED");
    expect(failed.error?.message).toContain("SUBFLOW_TOO_DEEP");
  });

  it("a flow step needs exactly one of handler and flow", async () => {
    const refusal = await mesh.putFlow({ id: "both", steps: [{ id: "x", handler: "echo", flow: "greet" }] }).then(() => undefined, (err: FmError) => err);
    expect(refusal?.code).toBe("INVALID_FLOW");
    expect(refusal?.message).toContain("exactly one of handler");
  });
});
