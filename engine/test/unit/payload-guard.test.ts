import { JetStreamApiError } from "@nats-io/jetstream";
import { NoRespondersError } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { createLogger, createNames, FmError, TaskResult } from "@flowmonkey/shared";
import { Changes } from "../../src/execution/changes.js";
import { createPayloadGuard } from "../../src/outbox/payload-guard.js";
import { classifyPublishFailure, MessageTooLargeError } from "../../src/outbox/publish-failure.js";
import type { OutboxMessage } from "../../src/store/outbox.js";

const { subjects } = createNames("fm");
const log = createLogger({ name: "test", level: "silent" });
const MAX = 10_000;

function task(executionId: string, stepId: string, input: unknown): OutboxMessage {
  return {
    subject: subjects.task("us-east-1", "echo", "normal"),
    msgId: `${executionId}/${stepId}:1`,
    body: { taskId: `${executionId}/${stepId}`, executionId, stepId, attempt: 1, handler: { type: "echo" }, input, context: {}, metadata: { region: "us-east-1" } },
  };
}

function event(executionId: string, output: unknown): OutboxMessage {
  return { subject: subjects.exec("f", executionId, "completed"), body: { type: "completed", executionId, flowId: "f", output } };
}

describe("payload guard", () => {
  it("leaves what fits alone, fails an oversized task's attempt, trims an event's output, drops an oversized notice", async () => {
    const guard = createPayloadGuard({ maxPayload: () => MAX, subjects, log });
    const out = new Changes();
    const small = task("e1", "a", { v: "ok" });
    const e = out.of("e1");
    e.messages.push(small, task("e1", "big", { v: "x".repeat(MAX) }), event("e1", "y".repeat(MAX)));
    e.delayed.push({ notBefore: new Date(), messages: [task("e1", "later", { v: "z".repeat(MAX) })] });
    e.messages.push({ subject: subjects.dlq("us-east-1", "echo"), msgId: "dead:e1/big:1", body: { id: "e1/big:1", task: { input: "x".repeat(MAX) } } });

    await guard.fit(out);

    expect(e.messages[0]).toBe(small);
    const concluded = e.messages[1]!;
    expect(concluded.conclude).toBe(true);
    const result = TaskResult.parse(concluded.body);
    expect([result.taskId, result.attempt, result.outcome, result.metrics.workerId]).toEqual(["e1/big", 1, "failure", "engine"]);
    expect(result.outcome === "failure" && [result.failure.code, result.failure.retryable]).toEqual(["PAYLOAD_TOO_LARGE", false]);
    expect(e.messages[2]!.body).toMatchObject({ type: "completed", outputOmitted: { bytes: MAX + 2 } });
    expect(e.messages[2]!.body).not.toHaveProperty("output");
    expect(e.messages).toHaveLength(3);
    expect(e.delayed[0]!.messages[0]!.conclude).toBe(true);
    expect(guard.stats()).toEqual({ offloaded: 0, refusedTasks: 2, trimmedEvents: 1, droppedMessages: 1 });
  });

  it("offloads the inline context of a task that would not fit with it", async () => {
    const offloaded: string[] = [];
    const guard = createPayloadGuard({
      maxPayload: () => MAX,
      subjects,
      log,
      offload: {
        offloadTasks: async () => undefined,
        stats: () => ({ offloadedTasks: 0, storedBlobs: 0, reusedBlobs: 0 }),
        async offloadTask(executionId, message) {
          offloaded.push(executionId);
          message.body = { ...(message.body as object), context: {}, contextRef: { bucket: "b", name: "n", size: 1, encoding: "gzip", digest: "sha256:0" } };
          return true;
        },
      },
    });
    const out = new Changes();
    const m = task("e2", "a", { v: "ok" });
    (m.body as { context: unknown }).context = { big: "c".repeat(MAX) };
    out.of("e2").messages.push(m);
    await guard.fit(out);
    expect(offloaded).toEqual(["e2"]);
    expect(out.of("e2").messages[0]!.conclude).toBeUndefined();
    expect(out.of("e2").messages[0]!.body).toMatchObject({ context: {}, contextRef: { name: "n" } });
  });
});

describe("publish failure classes", () => {
  it.each([
    ["too large (measured)", new MessageTooLargeError(300_000, 262_144), "refused", "PAYLOAD_TOO_LARGE"],
    ["no responders (a region cut off)", new NoRespondersError("fm.tasks.x"), "transient", "PUBLISH_FAILED"],
    ["a full work queue", new JetStreamApiError({ code: 503, err_code: 10077, description: "maximum messages exceeded" }), "transient", "PUBLISH_FAILED"],
    ["a routing hold", new FmError("REGION_UNAVAILABLE", "no region"), "transient", "PUBLISH_FAILED"],
    ["an internal error", new FmError("INTERNAL", "no task subject"), "unknown", "PUBLISH_FAILED"],
    ["anything else", new TypeError("boom"), "unknown", "PUBLISH_FAILED"],
  ])("%s", (_what, err, kind, code) => {
    expect(classifyPublishFailure(err)).toMatchObject({ kind, code });
  });
});
