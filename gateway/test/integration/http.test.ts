/**
 * The gateway's HTTP surface against a real mesh: nats-server from PATH, the engine on a fresh
 * PostgreSQL database and a worker, all in-process on a unique prefix. Every error is checked
 * as application/problem+json with the code table's status.
 */
import { Kvm } from "@nats-io/kv";
import { createLogger, encode, STEP_KEYS, type ExecutionView } from "@flowmonkey/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, type Gateway } from "@flowmonkey/gateway";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { waitFor } from "../../../test/support/wait.js";
import { readSse } from "./sse-reader.js";

const MAX_BODY = 8 * 1024;
const nats = useNatsServer();
const pg = useTestDatabase();
const log = createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" });
let mesh: TestMesh;
let gateway: Gateway;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url });
  await mesh.putFlow({
    id: "hello",
    steps: [
      { id: "greet", handler: "transform", input: { expression: "'Hello, ' & name & '!'", data: "{% input %}" } },
      { id: "shout", handler: "echo", input: { text: "{% $uppercase(steps.greet) %}" } },
    ],
    output: "{% steps.shout.text %}",
  });
  await mesh.putFlow({ id: "slow", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
  // Two attempts that fail retryably: the second one is dead-lettered (attempts_exhausted).
  await mesh.putFlow({
    id: "flaky",
    steps: [
      {
        id: "call",
        handler: "fail",
        input: { code: "UPSTREAM_DOWN", retryable: true },
        retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false },
      },
    ],
  });
  gateway = createGateway({ nc: mesh.nc, log, prefix: mesh.prefix, port: 0, host: "127.0.0.1", maxMessageBytes: MAX_BODY });
  await gateway.start();
});

afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

interface Reply {
  status: number;
  type: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field below
}

async function http(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: text ? JSON.parse(text) : undefined };
}

function expectProblem(reply: Reply, status: number, code: string) {
  expect(reply.type).toBe("application/problem+json");
  expect(reply.body).toMatchObject({ status, code, type: `urn:flowmonkey:error:${code}` });
  expect(typeof reply.body.title).toBe("string");
  expect(typeof reply.body.detail).toBe("string");
}

async function waitForView(id: string, status: ExecutionView["status"]): Promise<ExecutionView> {
  return waitFor(
    async () => {
      const reply = await http("GET", `/v1/executions/${id}`);
      return reply.status === 200 && reply.body.status === status ? (reply.body as ExecutionView) : undefined;
    },
    { timeoutMs: 20_000, message: `GET /v1/executions/${id} to show ${status}` },
  );
}

describe("executions", () => {
  it("starts a flow (202 + executionId) and shows it completed with its steps", async () => {
    const started = await http("POST", "/v1/flows/hello/executions", JSON.stringify({ input: { name: "http" } }));
    expect(started.status).toBe(202);
    expect(started.body.executionId).toMatch(/^[A-Za-z0-9_-]+$/);

    const view = await waitForView(started.body.executionId, "completed");
    expect(view.output).toBe("HELLO, HTTP!");
    expect(view.steps.map((s) => [s.stepId, s.status])).toEqual([
      ["greet", "completed"],
      ["shout", "completed"],
    ]);
  });

  it("lists executions filtered by flow and status, with a limit", async () => {
    const { body } = await http("POST", "/v1/flows/hello/executions", JSON.stringify({ input: { name: "list" } }));
    await waitForView(body.executionId, "completed");

    const completed = await http("GET", "/v1/executions?flowId=hello&status=completed&limit=50");
    expect(completed.status).toBe(200);
    expect(completed.body.executions.map((e: ExecutionView) => e.id)).toContain(body.executionId);
    expect(completed.body.executions.every((e: ExecutionView) => e.flowId === "hello" && e.status === "completed")).toBe(true);

    const failed = await http("GET", "/v1/executions?flowId=hello&status=failed");
    expect(failed.body.executions.map((e: ExecutionView) => e.id)).not.toContain(body.executionId);

    const one = await http("GET", "/v1/executions?limit=1");
    expect(one.body.executions).toHaveLength(1);

    const bad = await http("GET", "/v1/executions?status=sleeping");
    expectProblem(bad, 400, "INVALID_INPUT");
    expect(bad.body.detail).toContain("status");
  });

  it("cancels a running execution", async () => {
    const { body } = await http("POST", "/v1/flows/slow/executions", "{}");
    await waitForView(body.executionId, "running");
    const cancelled = await http("POST", `/v1/executions/${body.executionId}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ executionId: body.executionId, status: "cancelled" });
    await waitForView(body.executionId, "cancelled");
  });

  it("streams one execution's events over SSE and drops the subscriptions when the client leaves", async () => {
    const executionId = `sse-${uniquePrefix()}`;
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/executions/${executionId}/events`, { signal: controller.signal });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = readSse(res);
    expect((await events.next()).event).toBe("ready");
    expect(gateway.openStreams()).toBe(1);

    await http("POST", "/v1/flows/hello/executions", JSON.stringify({ input: { name: "sse" }, executionId }));
    const seen: string[] = [];
    for (;;) {
      const { event, data } = await events.next();
      if (event !== "exec") continue;
      seen.push(JSON.parse(data).type);
      if (JSON.parse(data).type === "completed") break;
    }
    expect(seen).toEqual(expect.arrayContaining(["step.completed", "completed"]));

    controller.abort();
    await waitFor(() => gateway.openStreams() === 0, { message: "the SSE stream to be closed after the client left" });
  });
});

describe("live progress on a stream", () => {
  it("passes on a worker's progress (its region's subject) and the engine's, only when the body names the step its subject names", async () => {
    const executionId = `sse-p-${uniquePrefix()}`;
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/executions/${executionId}/events`, { signal: controller.signal });
    const events = readSse(res);
    try {
      expect((await events.next()).event).toBe("ready");
      const progress = (body: Record<string, unknown>) => encode({ stepId: "s", percent: 10, at: new Date().toISOString(), ...body });
      const subjects = mesh.names.subjects;
      // A body naming another execution than its subject is dropped, whoever sent it.
      mesh.nc.publish(subjects.regionProgress("eu-west-1", executionId, "s"), progress({ executionId: "someone-else", message: "spoofed" }));
      mesh.nc.publish(subjects.regionProgress("eu-west-1", executionId, "s"), progress({ executionId, message: "worker" }));
      mesh.nc.publish(subjects.progress(executionId, "s"), progress({ executionId, message: "engine" }));
      const seen: string[] = [];
      while (seen.length < 2) {
        const { event, data } = await events.next();
        if (event === "progress") seen.push((JSON.parse(data) as { message: string }).message);
      }
      expect(seen).toEqual(["worker", "engine"]);
    } finally {
      controller.abort();
    }
  });
});

describe("streams that catch up", () => {
  it("a reconnecting execution stream gets the execution and each step's latest progress, every event with an id", async () => {
    const { body } = await http("POST", "/v1/flows/slow/executions", "{}");
    const executionId: string = body.executionId;
    // The step shows running once the engine has its worker's started announcement: nothing more
    // is published for it before the stream opens (the 60 s nap reports progress only every 6 s).
    await waitFor(
      async () => ((await http("GET", `/v1/executions/${executionId}`)).body as ExecutionView).steps.find((s) => s.stepId === "nap")?.status === "running" || undefined,
      { timeoutMs: 20_000, message: "the nap step to show running" },
    );
    // The latest progress as a worker leaves it in KV fm_progress.
    const kv = await new Kvm(mesh.nc).open(mesh.names.buckets.progress);
    await kv.put(STEP_KEYS.key("us-east-1", executionId, "nap"), encode({ executionId, stepId: "nap", percent: 42, message: "half-way", at: new Date().toISOString() }));

    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/executions/${executionId}/events`, { signal: controller.signal, headers: { "last-event-id": "earlier-7" } });
    const events = readSse(res);
    try {
      const ready = await events.next();
      expect(ready.event).toBe("ready");
      const snapshot = await events.next();
      expect(snapshot.event).toBe("snapshot");
      expect(JSON.parse(snapshot.data)).toMatchObject({ id: executionId, status: "running" });
      const progress = await events.next();
      expect(progress.event).toBe("progress");
      expect(JSON.parse(progress.data)).toMatchObject({ executionId, stepId: "nap", percent: 42 });
      const ids = [ready.id, snapshot.id, progress.id];
      expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
      expect(new Set(ids).size).toBe(3);
    } finally {
      controller.abort();
      await http("POST", `/v1/executions/${executionId}/cancel`);
    }
  });

  it("a flow's stream sends its recent executions, then their events as they happen", async () => {
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/v1/flows/hello/events`, { signal: controller.signal });
    const events = readSse(res);
    try {
      expect((await events.next()).event).toBe("ready");
      const snapshot = await events.next();
      expect(snapshot.event).toBe("snapshot");
      expect(JSON.parse(snapshot.data)).toMatchObject({ flowId: "hello", executions: expect.any(Array) });
      const { body } = await http("POST", "/v1/flows/hello/executions", JSON.stringify({ input: { name: "flow-stream" } }));
      for (;;) {
        const { event, data } = await events.next();
        const parsed = JSON.parse(data);
        if (event === "exec" && parsed.executionId === body.executionId && parsed.type === "completed") break;
        if (event === "exec") expect(parsed.flowId).toBe("hello");
      }
    } finally {
      controller.abort();
    }
  });
});

describe("dead letters", () => {
  it("lists a dead-lettered task, replays it once, and refuses a second replay and an unknown id", async () => {
    const { body } = await http("POST", "/v1/flows/flaky/executions", "{}");
    const executionId: string = body.executionId;
    await waitForView(executionId, "failed");
    const id = `${executionId}/call:2`;

    const listed = await http("GET", "/v1/dlq?handler=fail&region=us-east-1&limit=500");
    expect(listed.status).toBe(200);
    const dead = listed.body.deadTasks.find((d: { id: string }) => d.id === id);
    expect(dead).toMatchObject({ executionId, flowId: "flaky", stepId: "call", attempt: 2, handler: "fail", reason: "attempts_exhausted" });
    expect(dead.lastError.code).toBe("UPSTREAM_DOWN");
    expect(dead.replayedAt).toBeUndefined();

    const replayed = await http("POST", "/v1/dlq/replay", JSON.stringify({ ids: [id] }));
    expect(replayed.status).toBe(200);
    expect(replayed.body).toEqual({ replayed: [id], refused: [] });

    // Refusals are not request errors: 200, each id with its code.
    const again = await http("POST", "/v1/dlq/replay", JSON.stringify({ ids: [id, "no-such-task:1"] }));
    expect(again.status).toBe(200);
    expect(again.body.replayed).toEqual([]);
    expect(again.body.refused.map((r: { id: string; code: string }) => [r.id, r.code])).toEqual([
      [id, "INVALID_STATE"],
      ["no-such-task:1", "DEAD_TASK_NOT_FOUND"],
    ]);

    // Replayed ones are listed only with includeReplayed.
    const open = await http("GET", "/v1/dlq?handler=fail");
    expect(open.body.deadTasks.map((d: { id: string }) => d.id)).not.toContain(id);
    const all = await http("GET", "/v1/dlq?handler=fail&includeReplayed=true");
    expect(all.body.deadTasks.find((d: { id: string }) => d.id === id)?.replayedAt).toEqual(expect.any(String));
  });

  it("refuses a bad query or body with 400 problem+json naming the field", async () => {
    for (const [query, field] of [
      ["limit=0", "limit"],
      ["limit=501", "limit"],
      ["limit=many", "limit"],
      ["includeReplayed=maybe", "includeReplayed"],
      ["handler=a.b", "handler"],
      ["regoin=us-east-1", "regoin"],
    ] as const) {
      const reply = await http("GET", `/v1/dlq?${query}`);
      expect(reply.status, query).toBe(400);
      expectProblem(reply, 400, "INVALID_INPUT");
      expect(reply.body.detail, query).toContain(field);
    }
    expectProblem(await http("POST", "/v1/dlq/replay", JSON.stringify({ ids: [] })), 400, "INVALID_INPUT");
    expectProblem(await http("POST", "/v1/dlq/replay", JSON.stringify({ ids: ["x"], force: true })), 400, "INVALID_INPUT");
    expectProblem(await http("POST", "/v1/dlq/replay", "{not json"), 400, "INVALID_JSON");
  });
});

describe("flows", () => {
  it("registers a definition and lists it", async () => {
    const definition = { id: "registered", steps: [{ id: "only", handler: "echo", input: { a: 1 } }] };
    const put = await http("POST", "/v1/flows", JSON.stringify(definition));
    expect([200, 201]).toContain(put.status);
    expect(put.body).toMatchObject({ flowId: "registered", version: 1 });

    const list = await http("GET", "/v1/flows");
    expect(list.body.flows.map((f: { flowId: string }) => f.flowId)).toEqual(expect.arrayContaining(["hello", "registered"]));
  });

  it("refuses an invalid definition with INVALID_FLOW", async () => {
    const cyclic = { id: "bad", steps: [{ id: "a", handler: "echo", dependsOn: ["a"] }] };
    expectProblem(await http("POST", "/v1/flows", JSON.stringify(cyclic)), 422, "INVALID_FLOW");
  });
});

describe("errors are problem+json", () => {
  it("malformed JSON → 400 INVALID_JSON", async () => {
    expectProblem(await http("POST", "/v1/flows/hello/executions", "{not json"), 400, "INVALID_JSON");
  });

  it("wrong shape → 400 INVALID_INPUT naming the field", async () => {
    const reply = await http("POST", "/v1/flows/hello/executions", JSON.stringify({ input: {}, priority: "urgent" }));
    expectProblem(reply, 400, "INVALID_INPUT");
    expect(reply.body.detail).toContain("priority");
    expect(reply.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: "priority" })]));
  });

  it("unknown flow → 404 FLOW_NOT_FOUND", async () => {
    expectProblem(await http("POST", "/v1/flows/no-such-flow/executions", "{}"), 404, "FLOW_NOT_FOUND");
  });

  it("unknown execution → 404 EXECUTION_NOT_FOUND", async () => {
    expectProblem(await http("GET", "/v1/executions/no-such-execution"), 404, "EXECUTION_NOT_FOUND");
  });

  it("a body over FM_MAX_MESSAGE_BYTES → 413 PAYLOAD_TOO_LARGE", async () => {
    const big = JSON.stringify({ input: { blob: "x".repeat(MAX_BODY * 2) } });
    expectProblem(await http("POST", "/v1/flows/hello/executions", big), 413, "PAYLOAD_TOO_LARGE");
  });

  it("unknown route → 404 NOT_FOUND", async () => {
    expectProblem(await http("GET", "/v2/nothing-here"), 404, "NOT_FOUND");
    expectProblem(await http("DELETE", "/v1/flows"), 404, "NOT_FOUND");
  });
});

describe("/readyz", () => {
  it("is 200 when NATS is connected and the engine answers", async () => {
    const reply = await http("GET", "/readyz");
    expect(reply.status).toBe(200);
    expect(reply.body.status).toBe("ok");
  });

  it("is 503 UNAVAILABLE when no engine serves the prefix, while /healthz (liveness) stays 200", async () => {
    const lonely = createGateway({ nc: mesh.nc, log, prefix: uniquePrefix(), port: 0, host: "127.0.0.1", healthTimeoutMs: 500 });
    await lonely.start();
    try {
      expect((await fetch(`${lonely.url}/healthz`)).status).toBe(200);
      const res = await fetch(`${lonely.url}/readyz`);
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(await res.json()).toMatchObject({ code: "UNAVAILABLE", status: 503 });
    } finally {
      await lonely.close();
    }
  });
});
