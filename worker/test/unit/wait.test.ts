import type { ResumeInfo } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { wait } from "../../src/handlers/index.js";
import type { Outcome } from "../../src/runner/outcome.js";
import { defineHandler } from "../../src/sdk/define-handler.js";
import { tierOf } from "../../src/usage/tier.js";
import { makeTask, runHandler } from "../helpers.js";

function settled(outcome: Outcome) {
  if (outcome.kind !== "result") throw new Error(`expected a result, got ${outcome.kind}`);
  return outcome.result;
}

const run = async (handler: Parameters<typeof runHandler>[0], input: unknown, resume?: ResumeInfo) =>
  settled(await runHandler(handler, makeTask({ type: handler.type, input, ...(resume ? { resume } : {}) })).outcome);

describe("the wait handler", () => {
  it("parks on its first run, with a random token unless given one", async () => {
    const before = Date.now();
    const r = await run(wait, { timeoutMs: 60_000, event: "order.paid", filter: "data.id = 1", reason: "payment" });
    expect(r).toMatchObject({ outcome: "wait", wait: { resumeOn: { event: "order.paid", filter: "data.id = 1" }, reason: "payment" } });
    if (r.outcome !== "wait") throw new Error("not a wait");
    expect(r.wait.resumeToken).toMatch(/^wt_[0-9a-f-]{36}$/);
    expect(Date.parse(r.wait.waitUntil!)).toBeGreaterThanOrEqual(before + 60_000);
    expect(await run(wait, { resumeToken: "mine" })).toMatchObject({ outcome: "wait", wait: { resumeToken: "mine" } });
  });

  it("returns the payload when resumed, and fails WAIT_TIMEOUT when its time ran out", async () => {
    expect(await run(wait, {}, { reason: "token", payload: { ok: true }, waitedMs: 5 })).toMatchObject({ outcome: "success", output: { ok: true } });
    expect(await run(wait, {}, { reason: "timeout", waitedMs: 5 })).toMatchObject({ outcome: "failure", failure: { code: "WAIT_TIMEOUT", retryable: false } });
  });

  it("refuses a filter without an event", async () => {
    expect(await run(wait, { filter: "true" })).toMatchObject({ outcome: "failure", failure: { code: "INVALID_INPUT" } });
  });
});

describe("ctx.pause.wait", () => {
  it("ends the run as a wait result, without the handler returning", async () => {
    let after = false;
    const pausing = defineHandler({
      type: "pausing",
      async execute(ctx) {
        await ctx.pause.wait({ reason: "later", maxWaitMs: 1000 });
        after = true;
        return "unreachable";
      },
    });
    const r = await run(pausing, {});
    expect(r).toMatchObject({ outcome: "wait", wait: { reason: "later" } });
    expect(after).toBe(false);
  });
});

describe("tiers", () => {
  it("is the smallest tier whose memory and CPU bounds hold the resources", () => {
    expect(tierOf({ memoryMb: 512, cpus: 1 })).toBe("small");
    expect(tierOf({ memoryMb: 2048, cpus: 1 })).toBe("medium");
    expect(tierOf({ memoryMb: 1024, cpus: 2 })).toBe("medium");
    expect(tierOf({ memoryMb: 8192, cpus: 2 })).toBe("large");
    expect(tierOf({ memoryMb: 1024, cpus: 8 })).toBe("large");
  });
});
