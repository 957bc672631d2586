import { FmError, type TaskResult } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { toOutcome, type RunMeta } from "../../src/runner/outcome.js";
import { defineHandler } from "../../src/sdk/define-handler.js";
import { NonRetryableFailure, RetryableFailure } from "../../src/sdk/failures.js";
import { z } from "zod";
import { makeTask, runHandler } from "../helpers.js";

const ids = { taskId: "t-1", executionId: "e-1", stepId: "s-1", attempt: 2 };
const meta: RunMeta = { workerId: "w-1", region: "r-1", startedAt: Date.UTC(2030, 0, 1), completedAt: Date.UTC(2030, 0, 1) + 250 };

function result(outcome: ReturnType<typeof toOutcome>): TaskResult {
  if (outcome.kind !== "result") throw new Error(`expected a result, got ${outcome.kind}`);
  return outcome.result;
}

describe("toOutcome", () => {
  it("a returned value is a success with that output, the ids and the metrics", () => {
    const r = result(toOutcome(ids, { kind: "returned", value: { n: 1 } }, meta, [{ op: "set", path: "a", value: 1 }]));
    expect(r).toEqual({
      ...ids,
      outcome: "success",
      output: { n: 1 },
      contextUpdates: [{ op: "set", path: "a", value: 1 }],
      metrics: { startedAt: "2030-01-01T00:00:00.000Z", completedAt: "2030-01-01T00:00:00.250Z", durationMs: 250, workerId: "w-1", region: "r-1" },
    });
  });

  it("undefined output becomes null, which JSON can carry", () => {
    expect(result(toOutcome(ids, { kind: "returned", value: undefined }, meta))).toMatchObject({ outcome: "success", output: null });
  });

  it("a RetryableFailure keeps its code, retryable flag, delay and details", () => {
    const error = new RetryableFailure("RATE_LIMITED", "slow down", { retryAfterMs: 1500, details: { limit: 10 } });
    const r = result(toOutcome(ids, { kind: "threw", error }, meta));
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "RATE_LIMITED", message: "slow down", retryable: true, retryAfterMs: 1500, details: { limit: 10 } } });
  });

  it("a NonRetryableFailure is not retryable", () => {
    const r = result(toOutcome(ids, { kind: "threw", error: new NonRetryableFailure("CARD_DECLINED", "no") }, meta));
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "CARD_DECLINED", retryable: false } });
  });

  it("a timeout is a retryable TASK_TIMEOUT failure and drops the unfinished context changes", () => {
    const r = result(toOutcome(ids, { kind: "timedOut", timeoutMs: 500 }, meta, [{ op: "delete", path: "x" }]));
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "TASK_TIMEOUT", retryable: true } });
    expect(r.contextUpdates).toBeUndefined();
  });

  it("an abort (worker shutdown) produces no result: the task is abandoned", () => {
    const out = toOutcome(ids, { kind: "aborted", reason: new FmError("WORKER_SHUTDOWN", "bye") }, meta);
    expect(out).toMatchObject({ kind: "abandoned", reason: { code: "WORKER_SHUTDOWN" } });
  });

  it.each([
    ["a string", "boom", "boom"],
    ["an object", { why: 42 }, 'non-Error thrown: {"why":42}'],
    ["a plain Error", new Error("bad"), "bad"],
  ])("%s thrown is an unexpected, retryable HANDLER_FAILED", (_what, error, message) => {
    const r = result(toOutcome(ids, { kind: "threw", error }, meta));
    expect(r).toMatchObject({ outcome: "failure", failure: { code: "HANDLER_FAILED", message, retryable: true } });
  });

  it("keeps failures within the result schema's limits", () => {
    const error = new NonRetryableFailure("X".repeat(300), "m".repeat(20_000), { retryAfterMs: Number.NaN });
    const r = result(toOutcome(ids, { kind: "threw", error }, meta));
    if (r.outcome !== "failure") throw new Error("expected a failure");
    expect(r.failure.code).toHaveLength(128);
    expect(r.failure.message.length).toBeLessThanOrEqual(16_384);
    expect(r.failure).not.toHaveProperty("retryAfterMs");
  });
});

describe("executeTask", () => {
  const never = defineHandler({ type: "never", execute: () => new Promise<never>(() => undefined) });

  it("times out a handler that never settles, and fires its signal", async () => {
    let signal: AbortSignal | undefined;
    const stuck = defineHandler({
      type: "stuck",
      execute: (ctx) => {
        signal = ctx.signal;
        return new Promise<never>(() => undefined);
      },
    });
    const run = runHandler(stuck, makeTask({ type: "stuck", config: { ...makeTask().config, timeoutMs: 50 } }));
    const out = await run.outcome;
    expect(out.kind === "result" && out.result).toMatchObject({ outcome: "failure", failure: { code: "TASK_TIMEOUT", retryable: true } });
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toMatchObject({ code: "TASK_TIMEOUT" });
  });

  it("abort() abandons the task at once and passes the reason to the handler's signal", async () => {
    const run = runHandler(never, makeTask({ type: "never" }));
    run.abort(new FmError("WORKER_SHUTDOWN", "stopping"));
    await expect(run.outcome).resolves.toMatchObject({ kind: "abandoned", reason: { code: "WORKER_SHUTDOWN" } });
  });

  it("input that fails the handler's schema is a non-retryable INVALID_INPUT failure, and execute never runs", async () => {
    let ran = false;
    const typed = defineHandler({ type: "typed", input: z.object({ n: z.number() }), execute: () => (ran = true) });
    const out = await runHandler(typed, makeTask({ type: "typed", input: { n: "one" } })).outcome;
    expect(out.kind === "result" && out.result).toMatchObject({ outcome: "failure", failure: { code: "INVALID_INPUT", retryable: false } });
    expect(ran).toBe(false);
  });

  it("records context changes as contextUpdates, and reads see them", async () => {
    const ctxUser = defineHandler({
      type: "ctx",
      execute: async (ctx) => {
        ctx.context.set("order.status", "paid");
        ctx.context.merge({ seen: true });
        ctx.context.delete("old");
        return { status: await ctx.context.get("order.status"), old: await ctx.context.get("old") };
      },
    });
    const out = await runHandler(ctxUser, makeTask({ type: "ctx", context: { old: 1, order: { id: 7 } } })).outcome;
    expect(out.kind === "result" && out.result).toMatchObject({
      outcome: "success",
      output: { status: "paid", old: undefined },
      contextUpdates: [
        { op: "set", path: "order.status", value: "paid" },
        { op: "merge", value: { seen: true } },
        { op: "delete", path: "old" },
      ],
    });
  });
});
