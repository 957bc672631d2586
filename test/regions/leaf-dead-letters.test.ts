/**
 * Dead letters of tasks whose deliveries ran out in a LEAF region, on a hub and the eu-west-1
 * leaf started from nats-config/*.conf. The leaf's nats-server raises the MAX_DELIVERIES
 * advisory inside its own domain; it is kept there (FM_ADVISORIES_EU_WEST_1) and sourced into
 * the hub's FM_ADVISORIES, and the engine reads the parked task back from — and deletes it
 * from — the eu domain's FM_TASKS:
 *  - a hub task and an eu task that sit at the same sequence of their domains' task streams
 *    both die at once; each is dead-lettered from its own domain (no confusion), each
 *    advisory reaches the hub once;
 *  - an advisory raised while the eu link is cut waits in the region and is handled once the
 *    link returns: none lost, nothing applied twice.
 *
 * "A worker that dies" is a client of the pool, with the region's worker credentials, that
 * pulls the task and never acks nor heartbeats it. On nats-server 2.9 the server gives up on a
 * task only when it next tries to deliver it, so that client keeps a pull waiting throughout.
 */
import { jetstream, jetstreamManager, type Consumer, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadTask, decode, ensureTaskPool } from "@flowmonkey/shared";
import type { NatsServerHandle } from "@flowmonkey/shared/dev";
import { useTestDatabase } from "../support/postgres.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { ROLES, HUB_REGION, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const MAX_DELIVER = 3;
const pg = useTestDatabase();
let topology: Topology;
let mesh: RegionMesh;
/** The engine's own views: the hub, and the eu leaf's domain from inside (works while the link is cut). */
let hubJsm: JetStreamManager;
let euJsm: JetStreamManager;
let euPool: Consumer;
let hubPool: Consumer;

/** The echo pool of `region`, with short deliveries, as a worker of that region opens it on its own server. */
async function dyingPool(server: NatsServerHandle, region: string): Promise<Consumer> {
  const nc: NatsConnection = await topology.connectAs(server, ROLES.worker(region));
  await ensureTaskPool(await jetstreamManager(nc), mesh.names, region, "echo", "normal", { ackWaitMs: 1000, maxDeliver: MAX_DELIVER });
  return jetstream(nc).consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool(region, "echo", "normal"));
}

/** Pulls the pool's tasks and lets every worker die with its task (no ack, no heartbeat) until `until` holds. */
async function dieOnEveryDelivery<T>(pool: Consumer, until: () => Promise<T | undefined | false>, what: string): Promise<{ value: T; seqs: number[] }> {
  const seqs: number[] = [];
  const value = await waitFor(
    async () => {
      const msg = await pool.next({ expires: 1000 });
      if (msg) seqs.push(msg.seq);
      return until();
    },
    { timeoutMs: 30_000, intervalMs: 0, message: what },
  );
  return { value, seqs };
}

const lastSeq = async (jsm: JetStreamManager, stream: string) => (await jsm.streams.info(stream)).state.last_seq;

async function deadLetterOf(executionId: string) {
  return (await mesh.api.listDeadTasks({ includeReplayed: true })).deadTasks.find((d) => d.executionId === executionId);
}

/** Dead letters on `fm.dlq.<region>.echo` in the hub's FM_DLQ, with the one of `executionId` decoded. */
async function dlqOf(region: string, executionId: string) {
  const subject = mesh.names.subjects.dlq(region, "echo");
  const info = await hubJsm.streams.info(mesh.names.streams.dlq, { subjects_filter: subject });
  const stored = await hubJsm.streams.getMessage(mesh.names.streams.dlq, { last_by_subj: subject });
  const letter = stored ? decode(stored.data, DeadTask) : undefined;
  return { count: info.state.subjects?.[subject] ?? 0, letter: letter?.task.executionId === executionId ? letter : undefined };
}

/** Attempt rows and dead-task rows of an execution: one each when nothing was applied twice. */
async function rowsOf(executionId: string) {
  const tasks = await mesh.engine.db.query<{ attempt: number; status: string; code: string | null }>(
    "SELECT attempt, status, error->>'code' AS code FROM tasks WHERE execution_id = $1 ORDER BY attempt",
    [executionId],
  );
  const dead = await mesh.engine.db.query<{ id: string }>("SELECT id FROM dead_tasks WHERE execution_id = $1", [executionId]);
  return { attempts: tasks.rows.map((r) => [r.attempt, r.status, r.code]), deadTasks: dead.rows.map((r) => r.id) };
}

beforeAll(async () => {
  topology = await startTopology([EU]);
  mesh = await startRegionMesh(topology, { databaseUrl: pg.url });
  hubJsm = await jetstreamManager(await topology.connectAs(topology.hub, ROLES.engine));
  euJsm = await jetstreamManager(await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine));
  euPool = await dyingPool(topology.leaves[EU]!.server, EU);
  hubPool = await dyingPool(topology.hub, HUB_REGION);
  await mesh.api.putFlow({ id: "eu-echo", steps: [{ id: "s", handler: "echo", region: EU, input: { n: "{% input.n %}" } }] });
  await mesh.api.putFlow({ id: "us-echo", steps: [{ id: "s", handler: "echo", region: HUB_REGION, input: { n: "{% input.n %}" } }] });
}, 60_000);
afterAll(async () => {
  await mesh?.close();
  await topology?.stop();
});

describe("a leaf region's task whose deliveries run out", () => {
  it("is dead-lettered from its own domain, beside a hub task at the same stream sequence", async () => {
    const advisoriesBefore = await lastSeq(hubJsm, mesh.names.streams.advisories);
    const euAdvisoriesBefore = await lastSeq(euJsm, mesh.names.domainStreams.advisories(EU));
    const eu = await mesh.api.start("eu-echo", { input: { n: 1 } });
    const us = await mesh.api.start("us-echo", { input: { n: 2 } });

    const [euRun, usRun] = await Promise.all([
      dieOnEveryDelivery(euPool, () => deadLetterOf(eu.executionId), "the eu task dead-lettered"),
      dieOnEveryDelivery(hubPool, () => deadLetterOf(us.executionId), "the us task dead-lettered"),
    ]);
    // Each task was delivered max_deliver times, and nothing more, in its own domain...
    expect(euRun.seqs.length).toBe(MAX_DELIVER);
    expect(usRun.seqs.length).toBe(MAX_DELIVER);
    expect(new Set(euRun.seqs).size).toBe(1);
    expect(new Set(usRun.seqs).size).toBe(1);
    // ...at the same sequence of two different streams named FM_TASKS: only the domain tells them apart.
    expect(euRun.seqs[0]).toBe(usRun.seqs[0]);

    for (const [run, region, executionId] of [[euRun, EU, eu.executionId], [usRun, HUB_REGION, us.executionId]] as const) {
      expect([run.value.reason, run.value.region, run.value.handler, run.value.attempt, run.value.deliveries, run.value.lastError?.code]).toEqual([
        "deliveries_exhausted",
        region,
        "echo",
        1,
        MAX_DELIVER,
        "DELIVERIES_EXHAUSTED",
      ]);
      const failed = await mesh.waitForStatus(executionId, "failed");
      expect(failed.error?.code).toBe("DELIVERIES_EXHAUSTED");
      expect(failed.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([["s", "failed", 1]]);
      const dlq = await waitFor(async () => {
        const d = await dlqOf(region, executionId);
        return d.letter ? d : undefined;
      }, { message: `the dead letter on fm.dlq.${region}.echo` });
      expect(dlq.count).toBe(1);
      expect(dlq.letter?.task).toMatchObject({ executionId, stepId: "s", attempt: 1, metadata: { region } });
    }
    // The parked copies are gone, each from its own domain's task stream.
    const seq = euRun.seqs[0]!;
    await waitFor(async () => (await euJsm.streams.getMessage(mesh.names.streams.tasks, { seq })) === null, { message: "the eu task gone from the eu domain's FM_TASKS" });
    await waitFor(async () => (await hubJsm.streams.getMessage(mesh.names.streams.tasks, { seq })) === null, { message: "the us task gone from the hub's FM_TASKS" });
    // One advisory each reached the hub's stream (the eu one through its domain's stream only,
    // not also live over the link), and the engine took both.
    expect(await lastSeq(euJsm, mesh.names.domainStreams.advisories(EU))).toBe(euAdvisoriesBefore + 1);
    expect(await lastSeq(hubJsm, mesh.names.streams.advisories)).toBe(advisoriesBefore + 2);
    await waitFor(async () => (await hubJsm.streams.info(mesh.names.streams.advisories)).state.messages === 0, { message: "the hub's advisories acked" });
    expect(await rowsOf(eu.executionId)).toEqual({ attempts: [[1, "failed", "DELIVERIES_EXHAUSTED"]], deadTasks: [`${eu.executionId}/s:1`] });
  });

  it("is dead-lettered when its advisory was raised while the region's link was cut, once the link returns", async () => {
    const advisories = mesh.names.domainStreams.advisories(EU);
    const euAdvisoriesBefore = await lastSeq(euJsm, advisories);
    const hubAdvisoriesBefore = await lastSeq(hubJsm, mesh.names.streams.advisories);
    const { executionId } = await mesh.api.start("eu-echo", { input: { n: 3 } });
    await waitFor(async () => (await euJsm.streams.info(mesh.names.streams.tasks)).state.messages === 1, { message: "the eu task stored at the leaf" });

    const link = topology.leaves[EU]!.link;
    link.cut();
    let cutRun: { seqs: number[] };
    try {
      cutRun = await dieOnEveryDelivery(euPool, async () => (await lastSeq(euJsm, advisories)) > euAdvisoriesBefore, "the advisory kept in the eu domain while cut off");
      expect(cutRun.seqs.length).toBe(MAX_DELIVER);
      // The hub cannot know yet: the execution still runs, its task is parked at the leaf.
      const view = await mesh.api.get(executionId);
      expect([view.status, view.steps[0]?.status]).toEqual(["running", "dispatched"]);
      expect(await lastSeq(hubJsm, mesh.names.streams.advisories)).toBe(hubAdvisoriesBefore);
      expect(await euJsm.streams.getMessage(mesh.names.streams.tasks, { seq: cutRun.seqs[0]! })).not.toBeNull();
    } finally {
      link.restore();
    }
    await topology.waitForLink(EU);
    const restoredAt = Date.now();

    const failed = await mesh.waitForStatus(executionId, "failed", 60_000);
    const handledMs = Date.now() - restoredAt;
    expect(failed.error?.code).toBe("DELIVERIES_EXHAUSTED");
    const dead = await deadLetterOf(executionId);
    expect([dead?.reason, dead?.region, dead?.deliveries]).toEqual(["deliveries_exhausted", EU, MAX_DELIVER]);
    const dlq = await waitFor(async () => {
      const d = await dlqOf(EU, executionId);
      return d.letter ? d : undefined;
    }, { message: "the dead letter on fm.dlq.eu-west-1.echo" });
    expect(dlq.letter?.id).toBe(`${executionId}/s:1`);
    await waitFor(async () => (await euJsm.streams.getMessage(mesh.names.streams.tasks, { seq: cutRun.seqs[0]! })) === null, { message: "the parked task gone from the eu domain" });
    await waitFor(async () => (await hubJsm.streams.info(mesh.names.streams.advisories)).state.messages === 0, { message: "the hub's advisories acked" });
    // Once: one advisory kept and sourced, one failed attempt, one dead letter (row and stream).
    expect(await lastSeq(euJsm, advisories)).toBe(euAdvisoriesBefore + 1);
    expect(await lastSeq(hubJsm, mesh.names.streams.advisories)).toBe(hubAdvisoriesBefore + 1);
    expect(await rowsOf(executionId)).toEqual({ attempts: [[1, "failed", "DELIVERIES_EXHAUSTED"]], deadTasks: [`${executionId}/s:1`] });
    const byId = await hubJsm.streams.info(mesh.names.streams.dlq, { subjects_filter: mesh.names.subjects.dlq(EU, "echo") });
    expect(byId.state.subjects?.[mesh.names.subjects.dlq(EU, "echo")]).toBe(2); // this one and the first test's
    console.info(`[regions] leaf dead letter: advisory raised while cut off, step failed ${handledMs} ms after the link returned`);
  });
});
