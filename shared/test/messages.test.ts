import { describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  BlobRef,
  ContextUpdate,
  DeadTask,
  Event,
  ExecutionEvent,
  Failure,
  FlowStart,
  Progress,
  Task,
  TaskResult,
} from "../src/protocol/messages/index.js";
import {
  CancelReply,
  ErrorReplySchema,
  ExecutionListRequest,
  ExecutionRef,
  ExecutionView,
  FlowListRequest,
  FlowPutReply,
  ResumeRequest,
  StartReply,
} from "../src/protocol/api.js";
import { decode, DEFAULT_MAX_MESSAGE_BYTES, encode, excerpt, parseWith } from "../src/protocol/codec.js";
import { FmError } from "../src/errors/fm-error.js";
import { EXECUTION_EVENT_TYPES } from "../src/protocol/subjects.js";

const AT = "2025-01-02T03:04:05.678Z";
const bytes = (text: string) => new TextEncoder().encode(text);

const task = {
  taskId: "exec-1/charge",
  executionId: "exec-1",
  flowId: "order-flow",
  flowVersion: 1,
  stepId: "charge",
  attempt: 1,
  handler: { type: "http-request", version: "1" },
  input: { url: "https://pay.example/charge", body: { id: 7 } },
  context: {},
  config: { timeoutMs: 30_000, retries: 2, backoff: { kind: "exponential", initialDelayMs: 5000, maxDelayMs: 300_000, jitter: true } },
  vault: { "stripe.key": "sealed:abc" },
  metadata: { region: "eu-west-1", tenantId: "t1", priority: "high", dispatchedAt: AT, traceparent: "00-abc-def-01" },
};

const metrics = { startedAt: AT, completedAt: AT, durationMs: 12, workerId: "w-1", region: "eu-west-1" };
const resultBase = { taskId: "exec-1/charge", executionId: "exec-1", stepId: "charge", attempt: 1, metrics };

/** Each schema with shapes it must accept and shapes it must refuse. */
const TABLE: Array<{ name: string; schema: z.ZodType; valid: unknown[]; invalid: unknown[] }> = [
  {
    name: "FlowStart",
    schema: FlowStart,
    valid: [
      { input: { name: "world" } },
      { input: { order: { id: 7 } }, context: { a: 1 }, executionId: "order-7", tenantId: "acme", region: "eu-west-1", priority: "high", labels: { env: "prod" } },
      {},
      { input: "a plain string is an input too" },
    ],
    invalid: [
      null,
      [],
      "hello",
      { input: {}, unknown: 1 },
      { name: "world" },
      { input: {}, executionId: "has.dot" },
      { input: {}, executionId: "" },
      { input: {}, priority: "urgent" },
      { input: {}, region: "eu west" },
      { input: {}, context: [] },
      { input: {}, labels: { a: 1 } },
      { input: {}, tenantId: "" },
    ],
  },
  {
    name: "Task",
    schema: Task,
    valid: [task, { ...task, context: {}, contextRef: { bucket: "fm_blobs", name: "ctx/exec-1", size: 10, encoding: "gzip" } }, { ...task, vault: undefined }],
    invalid: [
      { ...task, attempt: 0 },
      { ...task, flowVersion: "1.0.0" },
      { ...task, stepId: "a.b" },
      { ...task, handler: { type: "a b" } },
      { ...task, config: { ...task.config, timeoutMs: 0 } },
      { ...task, config: { ...task.config, backoff: { ...task.config.backoff, kind: "linear" } } },
      { ...task, metadata: { ...task.metadata, priority: "urgent" } },
      { ...task, metadata: { ...task.metadata, dispatchedAt: "yesterday" } },
      { ...task, context: undefined },
      { ...task, taskId: "" },
    ],
  },
  {
    name: "TaskResult",
    schema: TaskResult,
    valid: [
      { ...resultBase, outcome: "success", output: { status: 200 } },
      { ...resultBase, outcome: "success", output: null, contextUpdates: [{ op: "set", path: "a.b", value: 1 }, { op: "merge", value: { c: 2 } }, { op: "delete", path: "d" }] },
      { ...resultBase, outcome: "failure", failure: { code: "CARD_DECLINED", message: "declined", retryable: false } },
      { ...resultBase, outcome: "error", failure: { code: "HANDLER_NOT_FOUND", message: "no handler", retryable: false } },
      { ...resultBase, outcome: "wait", wait: { resumeToken: "tok-1", waitUntil: AT, resumeOn: { event: "order.paid" } } },
      { ...resultBase, outcome: "success", output: 1, logs: [{ level: "info", msg: "hi", at: AT }] },
    ],
    invalid: [
      { ...resultBase, outcome: "done", output: 1 },
      { ...resultBase, outcome: "failure" },
      { ...resultBase, outcome: "failure", failure: { code: "X", message: "m" } },
      { ...resultBase, outcome: "wait", wait: {} },
      { ...resultBase, outcome: "success", output: 1, metrics: { ...metrics, durationMs: -1 } },
      { ...resultBase, outcome: "success", output: 1, attempt: 0 },
      { ...resultBase, outcome: "success", output: 1, contextUpdates: [{ op: "set", path: "", value: 1 }] },
      { ...resultBase, outcome: "success", output: 1, contextUpdates: [{ op: "rename", path: "a" }] },
      { ...resultBase, outcome: "success", output: 1, metrics: undefined },
    ],
  },
  {
    name: "Progress",
    schema: Progress,
    valid: [
      { executionId: "exec-1", stepId: "encode", percent: 42, at: AT },
      { executionId: "exec-1", stepId: "encode", percent: 100, message: "done", estimatedCompletion: AT, checkpoint: { id: "c1", savedAt: AT, size: 10 }, at: AT },
    ],
    invalid: [
      { executionId: "exec-1", stepId: "encode", percent: 101, at: AT },
      { executionId: "exec-1", stepId: "encode", percent: -1, at: AT },
      { executionId: "exec-1", stepId: "encode", percent: 5 },
      { executionId: "exec.1", stepId: "encode", percent: 5, at: AT },
    ],
  },
  {
    name: "ExecutionEvent",
    schema: ExecutionEvent,
    valid: EXECUTION_EVENT_TYPES.map((type) => ({ type, executionId: "exec-1", flowId: "order-flow", flowVersion: 1, status: "running", at: AT })),
    invalid: [
      { type: "exploded", executionId: "exec-1", flowId: "order-flow", flowVersion: 1, status: "running", at: AT },
      { type: "started", executionId: "exec-1", flowId: "order-flow", flowVersion: 1, status: "sleeping", at: AT },
      { type: "started", executionId: "exec-1", flowId: "order-flow", flowVersion: 0, status: "running", at: AT },
    ],
  },
  {
    name: "Event",
    schema: Event,
    valid: [{}, { data: { orderId: 7 }, executionId: "exec-1", stepId: "pay", at: AT }],
    invalid: [{ executionId: "a.b" }, { at: "now" }],
  },
  {
    name: "DeadTask",
    schema: DeadTask,
    valid: [{ id: "d1", task, reason: "deliveries_exhausted", deliveries: 5, at: AT, lastError: { code: "TASK_TIMEOUT", message: "slow", retryable: true } }],
    invalid: [{ id: "d1", task, reason: "bored", deliveries: 5, at: AT }, { id: "d1", task: {}, reason: "undeliverable", deliveries: 5, at: AT }],
  },
  {
    name: "Failure",
    schema: Failure,
    valid: [{ code: "X", message: "m", retryable: true, retryAfterMs: 1000, details: { a: 1 } }],
    invalid: [{ code: "", message: "m", retryable: true }, { code: "X", message: "m", retryable: "yes" }, { code: "X", message: "m", retryable: true, retryAfterMs: -1 }],
  },
  {
    name: "BlobRef",
    schema: BlobRef,
    valid: [{ bucket: "fm_blobs", name: "n", size: 0, encoding: "identity" }],
    invalid: [{ bucket: "fm_blobs", name: "n", size: 1, encoding: "brotli" }],
  },
  {
    name: "ContextUpdate",
    schema: ContextUpdate,
    valid: [{ op: "set", path: "a", value: null }, { op: "merge", path: "a.b", value: {} }, { op: "delete", path: "a" }],
    invalid: [{ op: "merge", value: [] }, { op: "delete" }],
  },
  {
    name: "api FlowPutReply",
    schema: FlowPutReply,
    valid: [{ flowId: "order-flow", version: 2, created: true }],
    invalid: [{ flowId: "order-flow", version: "1.0.0", created: true }],
  },
  {
    name: "api StartReply",
    schema: StartReply,
    valid: [{ executionId: "exec-1", created: false }],
    invalid: [{ executionId: "exec-1" }],
  },
  {
    name: "api ExecutionRef",
    schema: ExecutionRef,
    valid: [{ executionId: "exec-1" }],
    invalid: [{}, { executionId: "exec-1", extra: true }],
  },
  {
    name: "api ExecutionListRequest",
    schema: ExecutionListRequest,
    valid: [{}, { flowId: "order-flow", status: "failed", limit: 500, cursor: "abc" }],
    invalid: [{ limit: 0 }, { limit: 501 }, { status: "sleeping" }, { page: 2 }],
  },
  {
    name: "api FlowListRequest",
    schema: FlowListRequest,
    valid: [{}, { flowId: "order-flow" }],
    invalid: [{ flowId: "a.b" }, { all: true }],
  },
  {
    name: "api CancelReply",
    schema: CancelReply,
    valid: [{ executionId: "exec-1", status: "cancelled" }],
    invalid: [{ executionId: "exec-1", status: "gone" }],
  },
  {
    name: "api ResumeRequest",
    schema: ResumeRequest,
    valid: [{ resumeToken: "tok" }, { resumeToken: "tok", payload: { ok: true } }],
    invalid: [{}, { resumeToken: "" }, { resumeToken: "tok", extra: 1 }],
  },
  {
    name: "api ExecutionView",
    schema: ExecutionView,
    valid: [
      {
        id: "exec-1",
        flowId: "order-flow",
        flowVersion: 1,
        status: "completed",
        input: { a: 1 },
        context: {},
        output: { ok: true },
        region: "us-east-1",
        createdAt: AT,
        updatedAt: AT,
        completedAt: AT,
        steps: [{ stepId: "charge", handler: "http-request", status: "completed", attempts: 1, output: 1 }],
      },
    ],
    invalid: [{ id: "exec-1", flowId: "order-flow", flowVersion: 1, status: "completed", input: null, context: {}, region: "x", createdAt: AT, updatedAt: AT, steps: [{ stepId: "s", handler: "h", status: "exploded", attempts: 0 }] }],
  },
  {
    name: "api error reply",
    schema: ErrorReplySchema,
    valid: [{ error: { code: "FLOW_NOT_FOUND", message: "no flow" } }, { error: { code: "INVALID_INPUT", message: "m", details: [] } }],
    invalid: [{ error: "boom" }, { error: { code: "X" } }],
  },
];

describe.each(TABLE)("$name schema", ({ schema, valid, invalid }) => {
  it.each(valid.map((v, i) => [i, v] as const))("accepts valid example #%i", (_i, value) => {
    const parsed = schema.safeParse(value);
    expect(parsed.error?.issues ?? []).toEqual([]);
    expect(parsed.success).toBe(true);
  });

  it.each(invalid.map((v, i) => [i, v] as const))("rejects bad shape #%i", (_i, value) => {
    expect(schema.safeParse(value).success).toBe(false);
  });
});

describe("FlowStart specifics", () => {
  it("defaults input to {} so an empty object starts a flow", () => {
    expect(FlowStart.parse({})).toEqual({ input: {} });
  });

  it("rejects an unwrapped input and names the unknown key", () => {
    const parsed = FlowStart.safeParse({ name: "world" });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toContain("name");
  });
});

describe("codec", () => {
  it("decodes a headerless `nats pub` body from DESIGN.md", () => {
    expect(decode(bytes('{"input":{"name":"world"}}'), FlowStart)).toEqual({ input: { name: "world" } });
  });

  it("encode → decode round-trips a Task", () => {
    const parsed = Task.parse(task);
    expect(decode(encode(parsed), Task)).toEqual(parsed);
  });

  it.each(["nope", "{", "{'input':1}", "undefined"])("non-JSON %j → INVALID_JSON", (text) => {
    const err = catchError(() => decode(bytes(text), FlowStart, { what: "flow start on fm.flows.start.x" }));
    expect(err).toBeInstanceOf(FmError);
    expect(err).toMatchObject({ code: "INVALID_JSON" });
    expect(err.message).toContain("flow start on fm.flows.start.x");
  });

  it("an empty body → INVALID_JSON", () => {
    expect(catchError(() => decode(new Uint8Array(0), FlowStart))).toMatchObject({ code: "INVALID_JSON" });
  });

  it("invalid UTF-8 → INVALID_JSON", () => {
    expect(catchError(() => decode(new Uint8Array([0x7b, 0xff, 0x7d]), FlowStart))).toMatchObject({ code: "INVALID_JSON" });
  });

  it("oversize → PAYLOAD_TOO_LARGE before parsing", () => {
    const body = bytes(`{"input":"${"x".repeat(100)}"}`);
    const err = catchError(() => decode(body, FlowStart, { maxBytes: 50 }));
    expect(err).toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    expect(err.message).toContain("50");
    // Oversize wins even when the body is not JSON: the size check runs first.
    expect(catchError(() => decode(bytes("x".repeat(51)), FlowStart, { maxBytes: 50 }))).toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    // Exactly at the limit is fine.
    expect(decode(bytes('{"input":1}'), FlowStart, { maxBytes: 11 })).toEqual({ input: 1 });
  });

  it("the default limit is 1 MiB", () => {
    expect(DEFAULT_MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    const big = bytes(`{"input":"${"x".repeat(DEFAULT_MAX_MESSAGE_BYTES)}"}`);
    expect(catchError(() => decode(big, FlowStart))).toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
  });

  it("wrong shape → INVALID_INPUT naming the path", () => {
    const err = catchError(() => decode(bytes('{"input":{},"labels":{"env":1}}'), FlowStart));
    expect(err).toMatchObject({ code: "INVALID_INPUT" });
    expect(err.message).toContain("labels.env");
    expect((err as FmError).details).toEqual([expect.objectContaining({ path: ["labels", "env"] })]);
  });

  it("wrong shape at the root names the root", () => {
    const err = catchError(() => decode(bytes("[1,2]"), FlowStart));
    expect(err).toMatchObject({ code: "INVALID_INPUT" });
    expect(err.message).toContain("(root)");
  });

  it("parseWith names what was parsed", () => {
    expect(() => parseWith(ExecutionRef, { executionId: "a b" }, "request on fm.api.executions.get")).toThrow(
      /request on fm\.api\.executions\.get: executionId/,
    );
  });

  it("excerpt cuts long payloads", () => {
    expect(excerpt(bytes("hello"))).toBe("hello");
    expect(excerpt(bytes("x".repeat(20)), 5)).toBe("xxxxx…");
  });
});

describe("FmError replies", () => {
  it("round-trips through {error:{code,message}}", () => {
    const err = new FmError("FLOW_NOT_FOUND", "no flow x", { details: { flowId: "x" } });
    const reply = err.toReply();
    expect(ErrorReplySchema.parse(reply)).toEqual({ error: { code: "FLOW_NOT_FOUND", message: "no flow x", details: { flowId: "x" } } });
    const back = FmError.fromReply(reply);
    expect(back).toBeInstanceOf(FmError);
    expect(back).toMatchObject({ code: "FLOW_NOT_FOUND", message: "no flow x", httpStatus: 404, retryable: false });
  });

  it("an unknown code from the wire becomes INTERNAL", () => {
    expect(FmError.fromReply({ error: { code: "MARTIAN", message: "?" } }).code).toBe("INTERNAL");
  });
});

function catchError(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("expected the call to throw");
}
