/**
 * Results that are not from the attempt the engine dispatched (issue 18, item 6), on a real
 * mesh. A result on fm.results.us-east-1 naming execution A, step d, attempt 1 but taskId
 * "B/d" used to complete A's step while writing B's attempt row ("completed by forger"); a
 * result on another region's subject was applied too. Now each is a recorded RESULT_MISMATCH
 * rejection and changes nothing; the real result is applied afterwards as usual.
 *
 * Which worker answers is not checked: the engine does not learn which worker pulled a task
 * (JetStream hands it out; the worker says nothing until its result). What is checked is what
 * the engine knows: the ids, the attempt number and the region the attempt was sent to.
 */
import { encode, type ExecutionView, type TaskResult } from "@flowmonkey/shared";
import { beforeAll, describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
// No worker serves "ghost": attempts stay dispatched, and the test plays the worker.
// The engine takes 16 KiB messages; the server 1 MiB.
const MAX_BYTES = 16 * 1024;
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, maxMessageBytes: MAX_BYTES, workers: [{ handlers: ["echo"] }] }));

beforeAll(async () => {
  await mesh.putFlow({ id: "ghost", steps: [{ id: "d", handler: "ghost", timeoutMs: 120_000 }] });
});

const stepOf = (view: ExecutionView, id: string) => view.steps.find((s) => s.stepId === id)!;

async function dispatched(): Promise<string> {
  const { executionId } = await mesh.api.start("ghost", { input: {} });
  await waitFor(async () => stepOf(await mesh.api.get(executionId), "d").status === "dispatched", { message: `${executionId} dispatched` });
  return executionId;
}

function resultFor(executionId: string, patch: Partial<TaskResult> & { region?: string; workerId?: string } = {}): TaskResult {
  const at = new Date().toISOString();
  const { region = "us-east-1", workerId = "w-1", ...rest } = patch;
  return {
    taskId: `${executionId}/d`,
    executionId,
    stepId: "d",
    attempt: 1,
    outcome: "success",
    output: { by: workerId },
    metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId, region },
    ...rest,
  } as TaskResult;
}

/** Publishes results on a results subject (JetStream, so they are stored before this returns) and waits for `n` more rejections. */
async function publishAndAwaitRejections(subjectRegion: string, results: unknown[]): Promise<Array<{ code: string; reason: string }>> {
  const count = async () => (await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections")).rows[0]!.n;
  const before = await count();
  const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
  for (const r of results) await js.publish(mesh.names.subjects.results(subjectRegion), encode(r));
  await waitFor(async () => (await count()) >= before + results.length, { message: `${results.length} rejections` });
  const { rows } = await mesh.engine.db.query<{ code: string; reason: string }>("SELECT code, reason FROM rejections ORDER BY id OFFSET $1", [before]);
  return rows;
}

async function attemptRows(executionId: string): Promise<Array<{ status: string; worker_id: string | null }>> {
  const { rows } = await mesh.engine.db.query<{ status: string; worker_id: string | null }>(
    "SELECT status, worker_id FROM tasks WHERE execution_id = $1 ORDER BY attempt",
    [executionId],
  );
  return rows;
}

describe("a forged result", () => {
  it("naming execution A but taskId B/d changes neither A nor B; B's own result still applies", async () => {
    const a = await dispatched();
    const b = await dispatched();
    const rows = await publishAndAwaitRejections("us-east-1", [resultFor(a, { taskId: `${b}/d`, workerId: "forger" })]);
    expect(rows).toEqual([{ code: "RESULT_MISMATCH", reason: expect.stringContaining(`is not the task of execution ${a} step d`) }]);
    expect(stepOf(await mesh.api.get(a), "d").status).toBe("dispatched");
    expect(await attemptRows(a)).toEqual([{ status: "dispatched", worker_id: null }]);
    expect(await attemptRows(b)).toEqual([{ status: "dispatched", worker_id: null }]);

    await (await import("@nats-io/jetstream")).jetstream(mesh.nc).publish(mesh.names.subjects.results("us-east-1"), encode(resultFor(b)));
    const view = await mesh.waitForStatus(b, "completed");
    expect(view.output).toEqual({ by: "w-1" });
    expect(await attemptRows(b)).toEqual([{ status: "completed", worker_id: "w-1" }]);
  });

  it.each([
    ["came on another region's subject", "eu-west-1", { region: "us-east-1" }, /says it ran in region us-east-1, but came on region eu-west-1's subject/],
    ["ran in a region the attempt was not sent to", "eu-west-1", { region: "eu-west-1" }, /attempt 1 was sent to region us-east-1, but the result came from region eu-west-1/],
    ["is for an attempt never dispatched", "us-east-1", { attempt: 2 }, /step d has had 1 attempt\(s\); attempt 2 was never dispatched/],
    ["names a step the execution lacks", "us-east-1", { stepId: "nope", taskId: "" }, /has no step nope/],
  ])("that %s is a recorded RESULT_MISMATCH and applies nothing", async (_name, subjectRegion, patch, reason) => {
    const id = await dispatched();
    const forged = resultFor(id, patch as Partial<TaskResult>);
    if (forged.taskId === "") forged.taskId = `${id}/${forged.stepId}`;
    const rows = await publishAndAwaitRejections(subjectRegion, [forged]);
    expect(rows).toEqual([{ code: "RESULT_MISMATCH", reason: expect.stringMatching(reason) }]);
    expect(stepOf(await mesh.api.get(id), "d").status).toBe("dispatched");
    expect(await attemptRows(id)).toEqual([{ status: "dispatched", worker_id: null }]);
  });

  it("a real result larger than the engine takes fails its step with PAYLOAD_TOO_LARGE, not its timeout", async () => {
    const id = await dispatched();
    const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
    // The worker only checks the server's limit: this one is stored, and was then refused and lost.
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(resultFor(id, { output: { pad: "x".repeat(2 * MAX_BYTES) } } as Partial<TaskResult>)));
    const view = await mesh.waitForStatus(id, "failed");
    expect(stepOf(view, "d").error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", retryable: false, message: expect.stringContaining("the limit is 16384") });
    expect(await attemptRows(id)).toEqual([{ status: "failed", worker_id: "w-1" }]);
  });

  it("a result for an unknown execution is still an EXECUTION_NOT_FOUND rejection", async () => {
    const rows = await publishAndAwaitRejections("us-east-1", [resultFor("no-such-execution")]);
    expect(rows).toEqual([{ code: "EXECUTION_NOT_FOUND", reason: expect.stringContaining("no-such-execution") }]);
  });

  it("a duplicate of an applied result is ignored (no rejection: a second run is normal)", async () => {
    const id = await dispatched();
    const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(resultFor(id)));
    await mesh.waitForStatus(id, "completed");
    const before = (await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections")).rows[0]!.n;
    // A second run's result, from another worker: same attempt, no longer current.
    await js.publish(mesh.names.subjects.results("us-east-1"), encode(resultFor(id, { workerId: "w-2", output: { by: "w-2" } })));
    // Then something that is recorded, to know the duplicate was processed before it.
    await publishAndAwaitRejections("us-east-1", [resultFor("after-the-duplicate")]);
    const after = (await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM rejections")).rows[0]!.n;
    expect(after).toBe(before + 1);
    expect((await mesh.api.get(id)).output).toEqual({ by: "w-1" });
    expect(await attemptRows(id)).toEqual([{ status: "completed", worker_id: "w-1" }]);
  });
});
