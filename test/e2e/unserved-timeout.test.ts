/**
 * A step whose handler no live worker serves does not hang forever (issue 16): its attempt
 * times out by the step's timeout like any other, whether no worker ever opened the pool or its
 * workers are gone with the task still queued. Real nats-server and PostgreSQL; engine and
 * workers in this process.
 */
import { defineHandler } from "@flowmonkey/worker";
import { describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"] }],
  engine: { taskDeadlineGraceMs: 300, deadlineSweepIntervalMs: 100 },
}));

describe("a step no live worker serves", () => {
  it("times out when no worker ever opened its pool", async () => {
    await mesh.putFlow({ id: "nobody", steps: [{ id: "lost", handler: "nosuch", timeoutMs: 500 }] });
    const { executionId } = await mesh.api.start("nobody", { input: {} });
    const view = await mesh.waitForStatus(executionId, "failed", 20_000);
    expect(view.error?.code).toBe("TASK_TIMEOUT");
    expect(view.steps.find((s) => s.stepId === "lost")?.error?.message).toMatch(/no live worker of nosuch in us-east-1/);
  });

  it("times out when its workers are gone and the task waits in the queue", async () => {
    // A worker of `gone` opens the pool, then stops (its registry entry goes with it).
    const worker = await mesh.startWorker({ handlers: [defineHandler({ type: "gone", execute: () => ({}) })] });
    await worker.close();
    await mesh.putFlow({ id: "orphaned", steps: [{ id: "queued", handler: "gone", timeoutMs: 500 }] });
    const { executionId } = await mesh.api.start("orphaned", { input: {} });
    const view = await mesh.waitForStatus(executionId, "failed", 20_000);
    expect(view.error?.code).toBe("TASK_TIMEOUT");
    expect(view.steps.find((s) => s.stepId === "queued")?.error?.message).toMatch(/no live worker of gone in us-east-1/);
  });
});
