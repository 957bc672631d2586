/**
 * Circuit breaking: a handler type whose tasks keep failing for infrastructure reasons in a
 * region is paused there for a cool-down (circuit open), then one probe task goes; its success
 * closes the circuit. Real nats-server and PostgreSQL; engine and worker in this process, the
 * worker serving a handler whose "database" the test switches off and on.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { defineHandler, RetryableFailure } from "@flowmonkey/worker";
import { z } from "zod";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const COOL_DOWN_MS = 1500;
const nats = useNatsServer();
const pg = useTestDatabase();
let databaseDown = true;
const calls: number[] = [];

const lookup = defineHandler({
  type: "lookup",
  version: "1",
  input: z.object({}).passthrough(),
  execute() {
    calls.push(Date.now());
    if (databaseDown) throw new RetryableFailure("UNAVAILABLE", "the customer database does not answer");
    return { found: true };
  },
});

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"] }],
  engine: { circuit: { minResults: 4, failureRatio: 0.5, coolDownMs: COOL_DOWN_MS } },
}));
beforeAll(async () => {
  await mesh.startWorker({ handlers: [lookup], concurrency: 4 });
});

async function dispatchedAt(executionId: string): Promise<number> {
  const { rows } = await mesh.engine.db.query<{ at: Date }>("SELECT dispatched_at AS at FROM tasks WHERE execution_id = $1 AND attempt = 1", [executionId]);
  return rows[0]!.at.getTime();
}

describe("circuit breaking per lane", () => {
  it("opens after infrastructure failures, holds new tasks for the cool-down, and closes on a successful probe", async () => {
    await mesh.putFlow({ id: "find", steps: [{ id: "find", handler: "lookup", input: {} }] });
    for (let i = 0; i < 4; i++) {
      const { executionId } = await mesh.api.start("find", { input: {} });
      expect((await mesh.waitForStatus(executionId, "failed")).error?.code).toBe("UNAVAILABLE");
    }
    const { circuits } = await mesh.api.lanes();
    expect(circuits).toEqual([expect.objectContaining({ lane: "us-east-1/lookup", state: "open", openUntil: expect.any(String) })]);
    const openUntil = Date.parse(circuits[0]!.openUntil!);

    // The database is back, but the lane does not know yet: new tasks are held, not run and failed.
    databaseDown = false;
    const held = [];
    for (let i = 0; i < 3; i++) held.push((await mesh.api.start("find", { input: {} })).executionId);
    const [probe, ...others] = held;
    for (const id of held) await mesh.waitForStatus(id, "completed", 10_000);
    const callsAfterOpen = calls.slice(4);
    expect(Math.min(...callsAfterOpen)).toBeGreaterThanOrEqual(openUntil - 20);
    // The probe went at the end of the cool-down; the others a cool-down later.
    expect(Math.abs((await dispatchedAt(probe!)) - openUntil)).toBeLessThan(50);
    for (const id of others) expect(await dispatchedAt(id)).toBeGreaterThanOrEqual(openUntil + COOL_DOWN_MS - 50);
    console.log(
      `[circuit] opened after 4 UNAVAILABLE results; probe dispatched ${(await dispatchedAt(probe!)) - openUntil} ms after the cool-down ended; ` +
        `no task of the lane ran during the ${COOL_DOWN_MS} ms cool-down`,
    );

    // Closed again: a new task goes at once.
    await waitFor(async () => (await mesh.api.lanes()).circuits.length === 0, { message: "the circuit closed" });
    const { executionId } = await mesh.api.start("find", { input: {} });
    const { rows } = await mesh.engine.db.query<{ lag: number }>(
      "SELECT extract(epoch FROM t.dispatched_at - e.created_at) * 1000 AS lag FROM tasks t JOIN executions e ON e.id = t.execution_id WHERE e.id = $1",
      [executionId],
    );
    expect(Number(rows[0]!.lag)).toBeLessThan(500);
    await mesh.waitForStatus(executionId, "completed");
  });
});
