/**
 * Routing across a hub (us-east-1) and two leaf regions started from nats-config/*.conf:
 * residency (a gdpr step is stored and run only in eu-west-1, also while eu is cut off: it
 * waits with a visible reason, then runs there), failover (a pinned, non-resident step goes to
 * another region when its own gives no responders), least-busy (a backlog in one allowed region
 * moves a new task to the other).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STEP_KEYS, type ExecutionView } from "@flowmonkey/shared";
import { defineHandler, RetryableFailure } from "@flowmonkey/worker";
import { useTestDatabase } from "../support/postgres.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { ROLES, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const AP = "ap-south-1";
const pg = useTestDatabase();

/** Saves a checkpoint and fails on its first run; a later run answers with the checkpoint it finds. */
const resumable = defineHandler({
  type: "resumable",
  version: "1",
  input: z.object({}).passthrough(),
  async execute(ctx) {
    const saved = await ctx.checkpoint.load();
    if (saved === undefined) {
      await ctx.checkpoint.save({ rows: 7 });
      throw new RetryableFailure("UNAVAILABLE", "first run fails after saving");
    }
    return { resumedFrom: saved };
  },
});
/** Reads one key of its context (offloaded above 2 KiB here) and says how long it is. */
const peeks = defineHandler({
  type: "peeks",
  version: "1",
  input: z.object({}).passthrough(),
  async execute(ctx) {
    const value = await ctx.context.get("big");
    return { length: typeof value === "string" ? value.length : -1 };
  },
});
let topology: Topology;
let mesh: RegionMesh;
const local: Record<string, NatsConnection> = {};

beforeAll(async () => {
  topology = await startTopology([EU, AP]);
  mesh = await startRegionMesh(topology, {
    databaseUrl: pg.url,
    // A context over 2 KiB is offloaded, to the blob bucket of the region its task goes to.
    engine: { residency: { gdpr: [EU], asia_or_eu: [AP, EU] }, routingBusyMargin: 3, regionLoadIntervalMs: 200, contextInlineMaxBytes: 2048 },
  });
  await mesh.startWorker("us-east-1", { handlers: ["echo", resumable, peeks] });
  await mesh.startWorker(EU, { handlers: ["echo", "delay", resumable, peeks], concurrency: 2 });
  await mesh.startWorker(AP, { handlers: ["echo", "delay", resumable, peeks], concurrency: 2 });
  local["us-east-1"] = await topology.connectAs(topology.hub, ROLES.engine);
  local[EU] = await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine);
  local[AP] = await topology.connectAs(topology.leaves[AP]!.server, ROLES.engine);
  await mesh.api.putFlow({ id: "gdpr", steps: [{ id: "personal", handler: "echo", residency: "gdpr", input: { who: "{% input.who %}" } }] });
  await mesh.api.putFlow({ id: "pinned-ap", steps: [{ id: "work", handler: "echo", region: AP, input: { n: 1 } }] });
  await mesh.api.putFlow({ id: "peek-ap", steps: [{ id: "peek", handler: "peeks", region: AP, input: {} }] });
  await mesh.api.putFlow({
    id: "resumable-ap",
    steps: [{ id: "rows", handler: "resumable", region: AP, input: {}, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 2000, jitter: false } }],
  });
  await mesh.api.putFlow({ id: "slow-eu", steps: [{ id: "slow", handler: "delay", region: EU, input: { ms: "{% input.ms %}" } }] });
  await mesh.api.putFlow({ id: "needs-gpu", steps: [{ id: "render", handler: "echo", require: ["gpu"], input: { frame: 1 } }] });
  await mesh.api.putFlow({ id: "needs-tpu", steps: [{ id: "train", handler: "echo", require: ["tpu"], input: { epoch: 1 } }] });
  await mesh.api.putFlow({ id: "asia-or-eu", steps: [{ id: "balanced", handler: "delay", residency: "asia_or_eu", input: { ms: 10 } }] });
}, 60_000);
afterAll(async () => {
  await mesh?.close();
  await topology?.stop();
});

/** Tasks ever stored in each region's task stream (its last sequence). */
async function taskCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [region, nc] of Object.entries(local)) out[region] = (await (await jetstreamManager(nc)).streams.info(mesh.names.streams.tasks)).state.last_seq;
  return out;
}

const attemptsOf = (view: ExecutionView, stepId: string) => view.steps.find((s) => s.stepId === stepId)?.history ?? [];

describe("residency", () => {
  it("stores and runs a gdpr step only in eu-west-1, though its execution belongs to us-east-1", async () => {
    const before = await taskCounts();
    const { executionId } = await mesh.api.start("gdpr", { input: { who: "ada" } });
    await mesh.waitForStatus(executionId, "completed");
    const view = await mesh.api.get(executionId);
    expect(view.region).toBe("us-east-1");
    expect(attemptsOf(view, "personal").map((a) => a.region)).toEqual([EU]);
    expect(await taskCounts()).toEqual({ ...before, [EU]: before[EU]! + 1 });
  });

  it("holds a gdpr step while eu is cut off (visible as REGION_UNAVAILABLE), never elsewhere, then runs it in eu", async () => {
    const before = await taskCounts();
    const link = topology.leaves[EU]!.link;
    link.cut();
    try {
      const { executionId } = await mesh.api.start("gdpr", { input: { who: "grace" } });
      const held = await waitFor(
        async () => {
          const attempt = attemptsOf(await mesh.api.get(executionId), "personal")[0];
          return attempt?.error?.code === "REGION_UNAVAILABLE" ? attempt : undefined;
        },
        { message: "the held attempt to show why it waits" },
      );
      expect(held.status).toBe("dispatched");
      expect((await taskCounts())["us-east-1"]).toBe(before["us-east-1"]);
      expect((await taskCounts())[AP]).toBe(before[AP]);
      link.restore();
      await topology.waitForLink(EU);
      await mesh.waitForStatus(executionId, "completed");
      const attempts = attemptsOf(await mesh.api.get(executionId), "personal");
      expect(attempts.map((a) => [a.region, a.status, a.error])).toEqual([[EU, "completed", undefined]]);
      const after = await taskCounts();
      expect(after).toEqual({ ...before, [EU]: before[EU]! + 1 });
    } finally {
      link.restore();
    }
  });
});

describe("failover", () => {
  it("sends a non-resident step pinned to ap-south-1 to another region while ap gives no responders", async () => {
    const link = topology.leaves[AP]!.link;
    link.cut();
    try {
      const { executionId } = await mesh.api.start("pinned-ap", {});
      await mesh.waitForStatus(executionId, "completed");
      const [attempt] = attemptsOf(await mesh.api.get(executionId), "work");
      expect(attempt?.region).not.toBe(AP);
      expect([EU, "us-east-1"]).toContain(attempt?.region);
    } finally {
      link.restore();
    }
    await topology.waitForLink(AP);
  });

  it("a retry sent to another region finds the checkpoint its first run saved in ap-south-1 (carried by the engine)", async () => {
    const { executionId } = await mesh.api.start("resumable-ap", {});
    // The first run failed in ap-south-1 and its result reached the engine: the retry is waiting out its backoff.
    await waitFor(async () => ((await mesh.api.get(executionId)).steps[0]?.history ?? []).some((a) => a.status === "failed") || undefined, {
      message: "the first attempt to fail",
    });
    const checkpoints = await new Kvm(local["us-east-1"]!).open(mesh.names.buckets.checkpoints);
    expect((await checkpoints.get(STEP_KEYS.key(AP, executionId, "rows")))?.json()).toEqual({ state: { rows: 7 } });
    const link = topology.leaves[AP]!.link;
    link.cut();
    try {
      const view = await mesh.waitForStatus(executionId, "completed");
      const [first, second] = attemptsOf(view, "rows");
      expect(first?.region).toBe(AP);
      expect(second?.region).not.toBe(AP);
      // Its worker may read only its own region's keys: the engine copied the checkpoint there.
      expect(view.output).toEqual({ resumedFrom: { rows: 7 } });
      expect((await checkpoints.get(STEP_KEYS.key(second!.region, executionId, "rows")))?.json()).toEqual({ state: { rows: 7 } });
    } finally {
      link.restore();
    }
    await topology.waitForLink(AP);
  });

  it("a task sent to another region reads its offloaded context from that region's blob bucket (carried by the engine)", async () => {
    const link = topology.leaves[AP]!.link;
    link.cut();
    try {
      const { executionId } = await mesh.api.start("peek-ap", { context: { big: "b".repeat(5000) } });
      const view = await mesh.waitForStatus(executionId, "completed");
      const [attempt] = attemptsOf(view, "peek");
      expect(attempt?.region).not.toBe(AP);
      // Its worker may read only its own region's bucket: the engine copied the context there, and recorded the copies for the cleanup.
      expect(view.output).toEqual({ length: 5000 });
      const { rows } = await mesh.engine.db.query<{ bucket: string }>("SELECT DISTINCT bucket FROM context_blobs WHERE execution_id = $1 ORDER BY bucket", [executionId]);
      expect(rows.map((r) => r.bucket)).toEqual([mesh.names.regionBuckets.blobs(AP), mesh.names.regionBuckets.blobs(attempt!.region)].sort());
    } finally {
      link.restore();
    }
    await topology.waitForLink(AP);
  });

  it("never moves a task into a lane an operator paused: with us-east-1/echo paused it fails over to eu-west-1", async () => {
    // Without the pause, us-east-1 comes first among the failover targets (both idle, the hub's region listed first).
    await mesh.api.pauseQueue({ region: "us-east-1", handler: "echo", reason: "maintenance" });
    const link = topology.leaves[AP]!.link;
    link.cut();
    try {
      const runs = await Promise.all(Array.from({ length: 3 }, () => mesh.api.start("pinned-ap", {})));
      for (const { executionId } of runs) {
        await mesh.waitForStatus(executionId, "completed");
        expect(attemptsOf(await mesh.api.get(executionId), "work").map((a) => a.region)).toEqual([EU]);
      }
    } finally {
      link.restore();
      await mesh.api.resumeQueue({ region: "us-east-1", handler: "echo" });
    }
    await topology.waitForLink(AP);
  });
});

describe("capabilities", () => {
  it("routes a step that requires gpu to the region where a live gpu worker serves its handler, and only that worker runs it", async () => {
    const gpu = await mesh.startWorker(AP, { handlers: ["echo"], capabilities: ["gpu"] });
    // Started at once: should the engine's registry watch not have seen the worker yet, the
    // task is held for a moment (CAPABILITY_UNAVAILABLE) and goes out on the relay's next try.
    // ap's other worker serves echo too, without gpu: it pulls only the plain echo pool, never echo~gpu.
    const runs = await Promise.all(Array.from({ length: 6 }, async () => (await mesh.api.start("needs-gpu", {})).executionId));
    for (const executionId of runs) {
      await mesh.waitForStatus(executionId, "completed");
      expect(attemptsOf(await mesh.api.get(executionId), "render").map((a) => [a.region, a.workerId])).toEqual([[AP, gpu.workerId]]);
    }
  });

  it("holds a step whose capabilities no live worker offers, saying so", async () => {
    const { executionId } = await mesh.api.start("needs-tpu", {});
    const attempt = await waitFor(async () => {
      const a = attemptsOf(await mesh.api.get(executionId), "train")[0];
      return a?.error?.code === "CAPABILITY_UNAVAILABLE" ? a : undefined;
    }, { message: "the tpu step to show why it waits" });
    expect(attempt.status).toBe("dispatched");
    await mesh.api.cancel(executionId);
  });
});

describe("least busy", () => {
  it("moves an unpinned step off a region whose pool has a backlog, within its residency set", async () => {
    const load = mesh.engine.regionLoad!;
    // 12 slow tasks on eu's 2 slots: a backlog of about 10.
    await Promise.all(Array.from({ length: 12 }, () => mesh.api.start("slow-eu", { input: { ms: 3000 } })));
    await waitFor(async () => {
      await load.refreshed();
      return (load.of(EU, "delay") ?? 0) >= 8;
    }, { message: "the engine to see eu's delay backlog" });
    // The execution belongs to eu (affinity), the rule allows ap and eu: ap is far less busy.
    const { executionId } = await mesh.api.start("asia-or-eu", { region: EU });
    await mesh.waitForStatus(executionId, "completed");
    expect(attemptsOf(await mesh.api.get(executionId), "balanced").map((a) => a.region)).toEqual([AP]);
  });
});
