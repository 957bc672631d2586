/**
 * A dispatched step shows `running` once a worker has started it (its "started" announcement on
 * the step's progress subject), and a step no worker took stays `dispatched`. Real mesh.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["delay", "echo"] }] });
  await mesh.putFlow({ id: "nap", steps: [{ id: "sleep", handler: "delay", input: { ms: 60_000 } }] });
  await mesh.putFlow({ id: "nobody", steps: [{ id: "ghost", handler: "unserved", input: {} }] });
});
afterAll(async () => {
  await mesh?.close();
});

describe("running", () => {
  it("a started step shows running, with its attempt; the live progress subject carried the announcement", async () => {
    const seen: Array<{ percent: number; message?: string; attempt?: number }> = [];
    const sub = mesh.nc.subscribe(mesh.names.subjects.progressAll, { callback: (_e, m) => void seen.push(m.json()) });
    const { executionId } = await mesh.api.start("nap", { input: {} });
    const step = await waitFor(async () => {
      const s = (await mesh.api.get(executionId)).steps[0]!;
      return s.status === "running" ? s : undefined;
    }, { message: "the step to show running" });
    expect(step.attempts).toBe(1);
    expect(seen).toContainEqual(expect.objectContaining({ percent: 0, message: "started", attempt: 1 }));
    sub.unsubscribe();
    await mesh.api.cancel(executionId);
  });

  it("a step no worker took stays dispatched", async () => {
    const { executionId } = await mesh.api.start("nobody", { input: {} });
    await mesh.waitForStatus(executionId, "running");
    // Give a (non-existent) worker every chance; the step's status must not claim it runs.
    await mesh.nc.flush();
    expect((await mesh.api.get(executionId)).steps[0]!.status).toBe("dispatched");
    await mesh.api.cancel(executionId);
  });
});
