/**
 * The mesh as a deployment runs it, under the shipped configs: a hub (nats-config/hub.conf) and
 * the eu-west-1 leaf (leaf-eu-west-1.conf), mutual TLS everywhere, and the engine, the gateway
 * and a worker per region as their own binaries (flowmonkey-engine, flowmonkey-gateway,
 * flowmonkey-worker), each logged in by its role's certificate only (NATS_TLS_*: no password
 * exists), the gateway behind an API token. One flow crosses what the roles' permissions must
 * allow: an offloaded context read from the leaf, checkpoints and progress under each region's
 * keys, a wait resumed by an event POSTed to the gateway, a pause resumed through the gateway,
 * and a live view that catches up with stored progress. Then: an event the hub's worker emits
 * leaves a step waiting on the leaf alone and the leaf worker's resumes it; a step whose retries
 * run out on the leaf is dead-lettered, listed and replayed through the gateway.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiClient, createNames, STEP_KEYS } from "@flowmonkey/shared";
import { useTestDatabase } from "../support/postgres.js";
import { startProcessUntilReady } from "../support/ready-process.js";
import { testCerts } from "../support/tls.js";
import { HUB_DOMAIN, HUB_REGION, ROLES, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const ROOT = resolve(import.meta.dirname, "../..");
const EU = "eu-west-1";
const names = createNames("fm");
const TOKEN = randomBytes(24).toString("base64url");
const pg = useTestDatabase();
const children: ChildProcess[] = [];
let topology: Topology;
let gatewayUrl: string;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  await new Promise((ok) => server.close(ok));
  return port;
}

function start(bin: string, env: Record<string, string>, ready: string): Promise<ChildProcess> {
  const common = { FM_PREFIX: "fm", LOG_LEVEL: "info", FM_LOG_PRETTY: "false" };
  return startProcessUntilReady(process.execPath, [resolve(ROOT, bin)], { ...common, ...env }, { ready, timeoutMs: 30_000, started: (c) => children.push(c) });
}

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  topology = await startTopology([EU]);
  const certs = testCerts();
  const hub = topology.hub.url;
  await start(
    "engine/dist/main.js",
    {
      NATS_URL: hub,
      ...certs.clientEnv(ROLES.engine),
      DATABASE_URL: pg.url,
      FM_HUB_DOMAIN: HUB_DOMAIN,
      FM_REGION_DOMAINS: JSON.stringify(topology.regionDomains),
      // A context over 2 KiB is offloaded to fm_blobs: the leaf's worker must read it through the hub's domain.
      FM_CONTEXT_INLINE_MAX_BYTES: "2048",
    },
    '"engine started"',
  );
  const worker = (region: string, server: string) => ({
    NATS_URL: server,
    ...certs.clientEnv(ROLES.worker(region)),
    FM_REGION: region,
    FM_HANDLER_MODULES: resolve(ROOT, "test/conformance/typescript-handlers.mjs"),
    FM_HEARTBEAT_TIMEOUT_MS: "10000",
    ...(region === EU ? { FM_HUB_DOMAIN: HUB_DOMAIN } : {}),
  });
  await start("worker/dist/main.js", worker(HUB_REGION, hub), "worker started");
  await start("worker/dist/main.js", worker(EU, topology.leaves[EU]!.server.url), "worker started");
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  const tokens = { [createHash("sha256").update(TOKEN).digest("hex")]: { scopes: ["read", "write", "admin"], name: "e2e" } };
  await start("gateway/dist/main.js", { NATS_URL: hub, ...certs.clientEnv(ROLES.gateway), FM_HTTP_PORT: String(port), FM_HTTP_HOST: "127.0.0.1", FM_API_TOKENS: JSON.stringify(tokens) }, "gateway listening");
}, 120_000);

afterAll(async () => {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((ok) => {
          if (c.exitCode !== null || c.signalCode !== null) return ok();
          c.once("exit", () => ok());
          c.kill("SIGTERM");
          setTimeout(() => c.kill("SIGKILL"), 10_000).unref();
        }),
    ),
  );
  await topology?.stop();
});

describe("engine, gateway and workers as binaries, each with its role's certificate only", () => {
  it("runs a flow across hub and leaf: offloaded context, checkpoints, progress, an event wait, a pause", async () => {
    const flow = {
      id: "shipped",
      steps: [
        { id: "fill1", handler: "conf-fill", region: EU, input: { key: "big1", size: 3000 } },
        { id: "fill2", handler: "conf-fill", region: EU, dependsOn: ["fill1"], input: { key: "big2", size: 3000 } },
        { id: "read", handler: "conf-read", region: EU, dependsOn: ["fill2"], input: {} },
        { id: "count", handler: "conf-count", region: EU, dependsOn: ["read"], input: { to: 3, pauseMs: 5 } },
        { id: "shout", handler: "conf-shout", region: HUB_REGION, dependsOn: ["count"], input: { text: "done" } },
        { id: "approve", handler: "conf-approve", region: HUB_REGION, dependsOn: ["shout"], input: {} },
        { id: "hold", handler: "conf-pause", region: EU, dependsOn: ["approve"], input: {} },
      ],
      output: { read: "{% steps.read %}", count: "{% steps.count %}", approve: "{% steps.approve %}", hold: "{% steps.hold %}" },
    };
    expect((await http("POST", "/v1/flows", flow)).status).toBeLessThan(300);
    const started = await http("POST", "/v1/flows/shipped/executions", { input: {}, context: { marker: "m-1" } });
    expect(started.status).toBeLessThan(300);
    const executionId: string = started.body.executionId;
    const view = async () => (await http("GET", `/v1/executions/${executionId}`)).body;

    // The wait: resumed by an event the gateway publishes (its role may publish fm.events.>).
    await waitFor(async () => ((await view()).steps.find((s: { stepId: string }) => s.stepId === "approve")?.status === "waiting") || undefined, { timeoutMs: 30_000, message: "the approve step to wait" });
    expect((await http("POST", "/v1/events/conf.approved", { data: { id: executionId } })).status).toBeLessThan(300);

    // The pause: resumed through the gateway by its token; its state comes back from the leaf's checkpoint key.
    await waitFor(async () => ((await view()).steps.find((s: { stepId: string }) => s.stepId === "hold")?.status === "waiting") || undefined, { timeoutMs: 30_000, message: "the hold step to pause" });
    expect((await http("POST", `/v1/resume/pause-${executionId}`, {})).status).toBeLessThan(300);

    const done = await waitFor(async () => {
      const v = await view();
      if (v.status === "failed" || v.status === "cancelled") throw new Error(`execution ${v.status}: ${JSON.stringify(v.error ?? v.steps)}`);
      return v.status === "completed" ? v : undefined;
    }, { timeoutMs: 30_000, message: "the execution to complete" });
    expect(done.output).toEqual({
      read: { marker: "m-1", big1: 3000, big2: 3000, readBefore: false },
      count: { resumedFrom: 0, reached: 3 },
      approve: { reason: "event", payload: { id: executionId } },
      hold: { state: { n: 5 }, reason: "token" },
    });

    // The read step's task carried no context, only where the engine offloaded it (fm_blobs at the hub).
    const gateway = createApiClient(await topology.connectAs(topology.hub, ROLES.gateway));
    const { task: readTask } = await gateway.getTask(`${executionId}/read`);
    expect(readTask.contextRef).toBeDefined();
    expect(readTask.context).toEqual({});

    // Where each region's worker left its step data: under its own region's keys.
    const engine = await topology.connectAs(topology.hub, ROLES.engine);
    const kvm = new Kvm(engine);
    const checkpoints = await kvm.open(names.buckets.checkpoints);
    expect((await checkpoints.get(STEP_KEYS.key(EU, executionId, "count")))?.json()).toEqual({ state: { next: 3 } });
    const progress = await kvm.open(names.buckets.progress);
    expect((await progress.get(STEP_KEYS.key(HUB_REGION, executionId, "shout")))?.json()).toMatchObject({ stepId: "shout", percent: 50 });

    // A live view opened now catches up with the stored progress, read by the gateway under its role.
    const controller = new AbortController();
    const res = await fetch(`${gatewayUrl}/v1/executions/${executionId}/events`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: controller.signal });
    try {
      const reader = res.body!.getReader();
      let text = "";
      await waitFor(
        async () => {
          const { value, done: ended } = await reader.read();
          if (value) text += new TextDecoder().decode(value);
          return text.includes('"percent":50') || ended || undefined;
        },
        { timeoutMs: 10_000, message: "the live view to send the stored progress" },
      );
      expect(text).toContain('"stepId":"shout"');
    } finally {
      controller.abort();
    }
  });

  it("a region's worker's event resumes waits parked in its region only", async () => {
    for (const [id, region] of [["emit-hub", HUB_REGION], ["emit-eu", EU]] as const) {
      expect((await http("POST", "/v1/flows", { id, steps: [{ id: "emit", handler: "conf-emit", region, input: { id: "{% input.id %}" } }] })).status).toBeLessThan(300);
    }
    expect((await http("POST", "/v1/flows", { id: "approve-eu", steps: [{ id: "approve", handler: "conf-approve", region: EU, input: {} }] })).status).toBeLessThan(300);
    const run = async (flowId: string, input: unknown) => {
      const { body } = await http("POST", `/v1/flows/${flowId}/executions`, { input });
      return waitFor(async () => {
        const v = (await http("GET", `/v1/executions/${body.executionId}`)).body;
        return ["completed", "failed"].includes(v.status) ? v : undefined;
      }, { timeoutMs: 30_000, message: `${flowId} to end` });
    };
    const waiting = (await http("POST", "/v1/flows/approve-eu/executions", { input: {} })).body.executionId as string;
    const stepStatus = async () => (await http("GET", `/v1/executions/${waiting}`)).body.steps[0].status as string;
    await waitFor(async () => (await stepStatus()) === "waiting" || undefined, { timeoutMs: 30_000, message: "the eu-west-1 step to wait" });

    // The hub region's worker emits the event the eu-west-1 step waits for: taken, and ignored.
    expect((await run("emit-hub", { id: waiting })).status).toBe("completed");
    const engine = await topology.connectAs(topology.hub, ROLES.engine);
    const jsm = await jetstreamManager(engine);
    await waitFor(async () => {
      const info = await jsm.consumers.info(names.streams.events, names.consumers.events);
      return (info.num_pending === 0 && info.num_ack_pending === 0) || undefined;
    }, { message: "the engine to take every event" });
    expect(await stepStatus()).toBe("waiting");

    // Its own region's worker's event resumes it.
    expect((await run("emit-eu", { id: waiting })).status).toBe("completed");
    const done = await waitFor(async () => {
      const v = (await http("GET", `/v1/executions/${waiting}`)).body;
      return v.status === "completed" ? v : undefined;
    }, { timeoutMs: 30_000, message: "the eu-west-1 step to resume" });
    expect(done.steps[0].output).toEqual({ reason: "event", payload: { id: waiting } });
  });

  it("dead-letters a step whose retries ran out on the leaf, lists it and replays it through the gateway", async () => {
    const flow = { id: "dead-eu", steps: [{ id: "f", handler: "conf-fails-until", region: EU, input: { failAttempts: 2 }, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false } }] };
    expect((await http("POST", "/v1/flows", flow)).status).toBeLessThan(300);
    const executionId = (await http("POST", "/v1/flows/dead-eu/executions", { input: {} })).body.executionId as string;
    const dead = await waitFor(async () => {
      const { body } = await http("GET", `/v1/dlq?region=${EU}&handler=conf-fails-until`);
      return (body.deadTasks as Array<{ id: string; executionId: string }>).find((d) => d.executionId === executionId);
    }, { timeoutMs: 30_000, message: "the dead letter to be listed" });
    expect(dead).toMatchObject({ stepId: "f", attempt: 2, region: EU, reason: "attempts_exhausted", lastError: { code: "NOT_YET" } });
    expect((await http("GET", `/v1/executions/${executionId}`)).body.status).toBe("failed");

    const replay = await http("POST", "/v1/dlq/replay", { ids: [dead!.id] });
    expect(replay.body).toEqual({ replayed: [dead!.id], refused: [] });
    const done = await waitFor(async () => {
      const v = (await http("GET", `/v1/executions/${executionId}`)).body;
      return v.status === "completed" ? v : undefined;
    }, { timeoutMs: 30_000, message: "the replayed step to complete" });
    expect(done.steps[0].output).toEqual({ attempt: 3 });
  });
});
