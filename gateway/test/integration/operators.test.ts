/**
 * What operators see, against a real mesh (nats-server from PATH, PostgreSQL, engine and one
 * worker in this process): the engine's and the worker's /metrics listeners and the gateway's
 * /metrics after real flows ran; /healthz and /readyz; /v1/workers, /v1/queues and the
 * `flowmonkey workers|queues` CLI; emitting an event.
 */
import { createLogger } from "@flowmonkey/shared";
import { createGateway, type Gateway } from "@flowmonkey/gateway";
import { defineHandler, NonRetryableFailure, type Worker } from "@flowmonkey/worker";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { scrape, valueOf } from "../../../test/support/prometheus.js";
import { waitFor } from "../../../test/support/wait.js";
import { runCli } from "./run-cli.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const log = createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" });
let mesh: TestMesh;
let worker: Worker;
let gateway: Gateway;
const REGION = "us-east-1";

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [], engine: { metrics: { port: 0, queueRefreshMs: 100 }, taskDeadlineGraceMs: 0, deadlineSweepIntervalMs: 100 } });
  // Two slots: two long delays fill them, a third waits in the queue.
  worker = await mesh.startWorker({ handlers: ["echo", "delay", "fail"], concurrency: 2, worker: { metrics: { port: 0 }, workerId: "ops-worker-1" } });
  await mesh.putFlow({ id: "hello", steps: [{ id: "say", handler: "echo", input: { text: "{% input.name %}" } }] });
  // A short timeout: a parked attempt must outlive its deadline without being timed out.
  await mesh.putFlow({ id: "quick", steps: [{ id: "say", handler: "echo", input: { text: "{% input.name %}" }, timeoutMs: 1000 }] });
  await mesh.putFlow({ id: "nap", steps: [{ id: "sleep", handler: "delay", input: { ms: 60_000 } }] });
  await mesh.putFlow({
    id: "flaky",
    steps: [{ id: "call", handler: "fail", input: { code: "UPSTREAM_DOWN", retryable: true }, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false } }],
  });
  gateway = createGateway({ nc: mesh.nc, log, prefix: mesh.prefix, port: 0, host: "127.0.0.1" });
  await gateway.start();

  const hello = await mesh.api.start("hello", { input: { name: "ops" } });
  await mesh.waitForStatus(hello.executionId, "completed");
  const flaky = await mesh.api.start("flaky", { input: {} });
  await mesh.waitForStatus(flaky.executionId, "failed");
  for (let i = 0; i < 3; i++) await mesh.api.start("nap", { input: {} });
  await waitFor(() => worker.stats().running === 2, { message: "both slots busy with delays" });
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

const cli = (...args: string[]) => runCli({ natsUrl: nats.url, prefix: mesh.prefix }, ...args);

describe("metrics", () => {
  it("the worker's listener shows durations by handler and outcome, dispatch latency, in-flight and utilization", async () => {
    expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const samples = await scrape(worker.metricsUrl!);
    const echo = { handler: "echo", region: REGION, service: "worker" };
    expect(valueOf(samples, "fm_task_duration_seconds_count", { ...echo, outcome: "success" })).toBe(1);
    // Two attempts of `flaky`, both failures.
    expect(valueOf(samples, "fm_task_duration_seconds_count", { handler: "fail", region: REGION, outcome: "failure" })).toBe(2);
    expect(valueOf(samples, "fm_task_dispatch_latency_seconds_count", echo)).toBe(1);
    expect(valueOf(samples, "fm_task_dispatch_latency_seconds_count", { handler: "delay", region: REGION })).toBe(2);
    expect(valueOf(samples, "fm_worker_tasks_in_flight")).toBe(2);
    expect(valueOf(samples, "fm_worker_concurrency")).toBe(2);
    expect(valueOf(samples, "fm_worker_utilization")).toBe(1);
    expect(valueOf(samples, "fm_task_redeliveries_total", echo) ?? 0).toBe(0);
  });

  it("the engine's listener shows executions by status, open dead letters and queue depth per pool", async () => {
    expect(mesh.engine.metricsUrl).toBeDefined();
    const samples = await waitFor(
      async () => {
        // The steady state, not a read taken while the first nap's task was queued and not yet
        // fetched (depth 1, ack-pending 0: lanes fetch when a task arrives, not ahead of it).
        const s = await scrape(mesh.engine.metricsUrl!);
        const delay = { region: REGION, handler: "delay", priority: "normal" };
        return valueOf(s, "fm_queue_depth", delay) === 1 && valueOf(s, "fm_queue_ack_pending", delay) === 2 ? s : undefined;
      },
      { message: "the two running delays counted as ack-pending and the third as queued" },
    );
    expect(valueOf(samples, "fm_queue_depth", { region: REGION, handler: "echo", priority: "normal" })).toBe(0);
    expect(valueOf(samples, "fm_executions", { status: "completed", service: "engine" })).toBe(1);
    expect(valueOf(samples, "fm_executions", { status: "failed" })).toBe(1);
    expect(valueOf(samples, "fm_executions", { status: "running" })).toBe(3);
    expect(valueOf(samples, "fm_executions", { status: "cancelled" })).toBe(0);
    expect(valueOf(samples, "fm_dlq_size", { region: REGION, handler: "fail" })).toBe(1);
    // Only the engine's own series: no worker histogram leaks into its registry.
    expect(samples.some((s) => s.name.startsWith("fm_task_duration"))).toBe(false);
  });

  it("the gateway's /metrics counts requests by route pattern", async () => {
    const { executions } = await mesh.api.list({ flowId: "hello" });
    expect((await fetch(`${gateway.url}/v1/executions/${executions[0]!.id}`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/no/such/thing`)).status).toBe(404);
    const samples = await scrape(`${gateway.url}/metrics`);
    expect(valueOf(samples, "fm_gateway_requests_total", { method: "GET", route: "/v1/executions/:id", status: "200", service: "gateway" })).toBe(1);
    expect(valueOf(samples, "fm_gateway_requests_total", { route: "unmatched", status: "404" })).toBe(1);
    expect(valueOf(samples, "fm_gateway_sse_streams")).toBe(0);
  });
});

describe("probes", () => {
  it("/healthz is the process; /readyz checks NATS, the engine and its store", async () => {
    const live = await fetch(`${gateway.url}/healthz`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "ok" });
    const ready = await fetch(`${gateway.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ok", engine: { status: "ok" }, store: { kind: "postgres" } });
  });
});

describe("workers and queues", () => {
  it("GET /v1/workers and `flowmonkey workers` list the live worker from the registry", async () => {
    const res = await fetch(`${gateway.url}/v1/workers?region=${REGION}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { workers: Array<Record<string, unknown>> };
    expect(body.workers).toEqual([
      expect.objectContaining({ workerId: "ops-worker-1", region: REGION, handlers: ["echo", "delay", "fail"], concurrency: 2 }),
    ]);
    expect((await (await fetch(`${gateway.url}/v1/workers?region=eu-west-1`)).json()) as unknown).toEqual({ workers: [] });
    expect((await fetch(`${gateway.url}/v1/workers?colour=red`)).status).toBe(400);

    const json = await cli("workers", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).workers.map((w: { workerId: string }) => w.workerId)).toEqual(["ops-worker-1"]);
    const human = await cli("workers");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^WORKER\s+REGION\s+HANDLERS\s+CAPABILITIES\s+IN FLIGHT/);
    expect(human.stdout).toMatch(/ops-worker-1\s+us-east-1\s+echo,delay,fail\s+-\s+\d\/2/);
  });

  it("GET /v1/queues and `flowmonkey queues` show depth and ack-pending per pool and priority", async () => {
    const delayNormal = { region: REGION, handler: "delay", priority: "normal", pending: 1, ackPending: 2 };
    const res = await fetch(`${gateway.url}/v1/queues?handler=delay`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { queues: Array<Record<string, unknown>> };
    expect(body.queues.map((q) => q["priority"])).toEqual(["high", "normal", "low"]);
    expect(body.queues[1]).toMatchObject(delayNormal);
    expect((await fetch(`${gateway.url}/v1/queues?handler=no%20spaces`)).status).toBe(400);

    const json = await cli("queues", "--json", "--handler", "delay");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).queues[1]).toMatchObject(delayNormal);
    const human = await cli("queues");
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/us-east-1\s+delay\s+normal\s+1\s+2\s+0/);
    const bad = await cli("queues", "--handler", "no spaces");
    expect(bad.code).toBe(2);
  });
});

describe("pausing a lane", () => {
  it("parks the lane's new tasks in the engine until it is resumed, over HTTP and in the CLI", async () => {
    const pause = await fetch(`${gateway.url}/v1/queues/${REGION}/echo/pause`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ reason: "upstream maintenance" }),
    });
    expect(pause.status).toBe(200);
    expect(await pause.json()).toEqual({ lane: `${REGION}/echo`, paused: true });

    const { executionId } = await mesh.api.start("quick", { input: { name: "held" } });
    // Parked: counted as held by the engine, never queued in JetStream, so never run.
    const parked = await waitFor(
      async () => {
        const q = await mesh.api.queues({ handler: "echo" });
        return q.paused[0]?.held === 1 ? q : undefined;
      },
      { message: "the echo task parked" },
    );
    expect(parked.paused[0]).toMatchObject({ lane: `${REGION}/echo`, reason: "upstream maintenance" });
    expect(parked.queues.find((q) => q.priority === "normal")).toMatchObject({ pending: 0, ackPending: 0, paused: true });
    // Past its deadline (1 s timeout, no grace) and several deadline sweeps later, the parked attempt is not timed out.
    const dispatchedAt = Date.parse((await mesh.api.get(executionId)).steps[0]!.history![0]!.dispatchedAt);
    await waitFor(() => Date.now() > dispatchedAt + 1000 + 500, { message: "the parked attempt's deadline to pass", timeoutMs: 5000 });
    expect((await mesh.api.get(executionId)).steps[0]).toMatchObject({ stepId: "say", status: "dispatched", attempts: 1 });
    const human = await cli("queues", "--handler", "echo");
    expect(human.stdout).toMatch(/us-east-1\s+echo\s+normal\s+0\s+0\s+0\s+\d+\s+paused/);
    // `lanes` does not call a paused lane healthy, and `status` says why the step waits.
    const lanes = await cli("lanes");
    expect(lanes.stdout).not.toContain("all lanes healthy");
    expect(lanes.stdout).toMatch(/paused[\s\S]*us-east-1\/echo\s+\S+\s+1\s+upstream maintenance/);
    const status = await cli("status", executionId);
    expect(status.stdout).toContain("say: waiting for a worker of echo in us-east-1: lane paused (upstream maintenance)");

    const resumed = await cli("queues", "resume", REGION, "echo", "--json");
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toEqual({ lane: `${REGION}/echo`, paused: false, wasPaused: true, released: 1 });
    // The first worker's two slots are busy with the long delays: a second one runs the echo.
    await mesh.startWorker({ handlers: ["echo"], concurrency: 1 });
    expect((await mesh.waitForStatus(executionId, "completed")).output).toEqual({ text: "held" });
    expect((await mesh.api.queues({ handler: "echo" })).paused).toEqual([]);

    const again = await fetch(`${gateway.url}/v1/queues/${REGION}/echo/resume`, { method: "POST" });
    expect(await again.json()).toMatchObject({ wasPaused: false, released: 0 });
    expect((await fetch(`${gateway.url}/v1/queues/No_Region/echo/pause`, { method: "POST" })).status).toBe(400);
    expect((await cli("queues", "pause", REGION)).code).toBe(2);
  });
});

describe("retrying a failed step", () => {
  // Fails its first attempt for good (non-retryable), succeeds on any later one.
  const onceBroken = defineHandler({
    type: "once-broken",
    version: "1",
    input: z.object({}).passthrough(),
    async execute(ctx) {
      if (ctx.task.attempt === 1) throw new NonRetryableFailure("BROKEN", "first attempt breaks");
      return { attempt: ctx.task.attempt };
    },
  });

  it("POST /v1/executions/:id/steps/:stepId/retry runs the step again and the failed execution on to completion", async () => {
    await mesh.startWorker({ handlers: [onceBroken, "echo"], concurrency: 2 });
    await mesh.putFlow({ id: "fragile", steps: [{ id: "call", handler: "once-broken", input: {} }, { id: "after", handler: "echo", input: { got: "{% steps.call.attempt %}" } }] });
    const { executionId } = await mesh.api.start("fragile", { input: {} });
    const failed = await mesh.waitForStatus(executionId, "failed");
    expect(failed.steps.map((s) => s.status)).toEqual(["failed", "cancelled"]);

    const retry = (stepId: string) => fetch(`${gateway.url}/v1/executions/${executionId}/steps/${stepId}/retry`, { method: "POST" });
    const res = await retry("call");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ executionId, stepId: "call", attempt: 2, status: "running" });
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["call", "completed", 2], ["after", "completed", 1]]);
    expect(done.steps[1]!.output).toEqual({ got: 2 });

    const again = await retry("call");
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: "INVALID_STATE" });
    const { executionId: other } = await mesh.api.start("fragile", { input: {} });
    await mesh.waitForStatus(other, "failed");
    const missing = await fetch(`${gateway.url}/v1/executions/${other}/steps/nope/retry`, { method: "POST" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "STEP_NOT_FOUND" });
    const viaCli = await cli("retry", other, "call", "--json");
    expect(viaCli.code).toBe(0);
    expect(JSON.parse(viaCli.stdout)).toMatchObject({ executionId: other, attempt: 2 });
    await mesh.waitForStatus(other, "completed");
  });
});

describe("purging dead letters", () => {
  it("POST /v1/dlq/purge deletes a pool's dead letters and their stream copies; the CLI wants a scope", async () => {
    expect((await mesh.api.listDeadTasks({ handler: "fail" })).deadTasks).toHaveLength(1);
    expect((await cli("dlq", "purge")).code).toBe(2);
    const res = await fetch(`${gateway.url}/v1/dlq/purge`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ region: REGION, handler: "fail" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ purged: 1, streamPurged: 1 });
    expect((await mesh.api.listDeadTasks({ includeReplayed: true })).deadTasks).toEqual([]);
    const samples = await waitFor(async () => {
      const s = await scrape(mesh.engine.metricsUrl!);
      return valueOf(s, "fm_dlq_size", { region: REGION, handler: "fail" }) === undefined ? s : undefined;
    }, { message: "fm_dlq_size to drop the purged pool" });
    expect(samples.some((s) => s.name === "fm_dlq_size")).toBe(false);
    const bad = await fetch(`${gateway.url}/v1/dlq/purge`, { method: "POST", body: JSON.stringify({ everything: true }) });
    expect(bad.status).toBe(400);
  });
});

describe("events", () => {
  it("POST /v1/events/:name stores the event in the events stream; a retry with the same Idempotency-Key is one event", async () => {
    const post = (key: string) =>
      fetch(`${gateway.url}/v1/events/order.paid`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key }, body: JSON.stringify({ data: { order: 7 } }) });
    const first = await post("evt-1");
    expect(first.status).toBe(202);
    const stored = (await first.json()) as { stream: string; seq: number; duplicate: boolean };
    expect(stored).toMatchObject({ name: "order.paid", stream: mesh.names.streams.events, duplicate: false });
    expect(await (await post("evt-1")).json()).toMatchObject({ seq: stored.seq, duplicate: true });

    const bad = await fetch(`${gateway.url}/v1/events/not..valid`, { method: "POST" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "INVALID_INPUT" });
  });
});
