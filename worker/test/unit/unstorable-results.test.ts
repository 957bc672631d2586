import { createSubjects, type TaskResult } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { toFailure } from "../../src/runner/outcome.js";
import { encodeResult } from "../../src/runner/publish-result.js";
import { createEventsApi } from "../../src/plumbing/events.js";

const at = "2030-01-01T00:00:00.000Z";
const base = { taskId: "e-1/s-1", executionId: "e-1", stepId: "s-1", attempt: 1, metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId: "w-1", region: "r-1" } };
const decoded = (data: Uint8Array) => JSON.parse(new TextDecoder().decode(data)) as TaskResult;

describe("a result the engine's database could not store", () => {
  it.each([
    ["a NUL in the output", { outcome: "success", output: { s: "a\u0000b" } }, "output.s contains \\u0000"],
    ["a lone surrogate in a context update", { outcome: "success", output: 1, contextUpdates: [{ op: "set", path: "k", value: "\udc00" }] }, "contextUpdates[0].value contains an unpaired"],
    ["a NUL in a failure's details", { outcome: "failure", failure: { code: "X", message: "m", retryable: true, details: { "\u0000": 1 } } }, "failure.details has a key"],
  ])("%s becomes a non-retryable UNSUPPORTED_JSON failure naming the path", (_name, patch, path) => {
    const r = decoded(encodeResult({ ...base, ...patch } as TaskResult, 1024 * 1024));
    expect(r).toMatchObject({ ...base, outcome: "failure", failure: { code: "UNSUPPORTED_JSON", retryable: false } });
    expect(r.outcome === "failure" && r.failure.message).toContain(path);
    expect("contextUpdates" in r).toBe(false);
  });

  it("logs are not stored, so a NUL in them changes nothing", () => {
    const result = { ...base, outcome: "success", output: 1, logs: [{ level: "info", msg: "\u0000", at }] } as TaskResult;
    expect(decoded(encodeResult(result, 1024 * 1024))).toEqual(result);
  });

  it("a handler error's own message keeps its text, with NUL escaped", () => {
    expect(toFailure(new Error("bad\u0000byte"))).toMatchObject({ message: "bad\\u0000byte" });
  });
});

describe("ctx.events.emit", () => {
  it("refuses data the engine could not store, before publishing", async () => {
    const published: string[] = [];
    const events = createEventsApi({ publish: async (subject) => void published.push(subject) }, createSubjects("fm"), { region: "eu-west-1", executionId: "e-1", stepId: "s-1" });
    await expect(events.emit("order.paid", { note: "\ud800" })).rejects.toMatchObject({ code: "UNSUPPORTED_JSON", message: expect.stringContaining("data of event order.paid: note") });
    await events.emit("order.paid", { note: "fine \u{1F600}" });
    // Under the worker's region, which the shipped permissions bind: it resumes only that region's waits.
    expect(published).toEqual(["fm.events.~eu-west-1.order.paid"]);
  });
});
