/**
 * The per-role users of nats-config/*.conf, on a hub and two leaf regions: an eu-west-1
 * worker's credentials cannot take ap-south-1 tasks (not through its own leaf, not through the
 * ap domain's API), cannot read another region's results, and cannot publish results for
 * another region, and cannot read or delete parked tasks or the dead-letter advisories; what it
 * needs (its own region's results) it can.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { PermissionViolationError, type NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNames, STEP_KEYS } from "@flowmonkey/shared";
import { ROLES, startTopology, type Topology } from "../support/topology.js";

const EU = "eu-west-1";
const AP = "ap-south-1";
const names = createNames("fm");
let topology: Topology;
let euWorker: NatsConnection;

beforeAll(async () => {
  topology = await startTopology([EU, AP]);
  euWorker = await topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU));
}, 30_000);
afterAll(async () => {
  await topology?.stop();
});

function isPermissionViolation(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 8; e = e.cause, i++) if (e instanceof PermissionViolationError) return true;
  return false;
}

async function denied(request: Promise<unknown>): Promise<boolean> {
  return request.then(
    () => false,
    (err: unknown) => isPermissionViolation(err),
  );
}

describe("an eu-west-1 worker's credentials", () => {
  it("cannot pull ap-south-1 tasks through the ap domain's JetStream API", async () => {
    const pool = names.consumers.taskPool(AP, "echo", "normal");
    expect(await denied(euWorker.request(`$JS.${AP}.API.CONSUMER.MSG.NEXT.${names.streams.tasks}.${pool}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.${AP}.API.CONSUMER.INFO.${names.streams.tasks}.${pool}`, "", { timeout: 2000 }))).toBe(true);
  });

  it("cannot listen to ap-south-1 task subjects", async () => {
    const sub = euWorker.subscribe(names.subjects.tasksOfRegion(AP));
    expect(isPermissionViolation(await sub.closed)).toBe(true);
  });

  it("cannot read results: not the hub's results stream, not another region's results subject", async () => {
    expect(await denied(euWorker.request(`$JS.hub.API.STREAM.INFO.${names.streams.results}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.hub.API.CONSUMER.CREATE.${names.streams.results}`, "{}", { timeout: 2000 }))).toBe(true);
    const sub = euWorker.subscribe(names.subjects.results(AP));
    expect(isPermissionViolation(await sub.closed)).toBe(true);
  });

  it("cannot read or delete a parked task, nor touch the dead-letter advisories (the engine's, in its domain and the hub's)", async () => {
    const seq = JSON.stringify({ seq: 1 });
    expect(await denied(euWorker.request(`$JS.API.STREAM.MSG.GET.${names.streams.tasks}`, seq, { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.API.STREAM.MSG.DELETE.${names.streams.tasks}`, seq, { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.API.STREAM.INFO.${names.domainStreams.advisories(EU)}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.hub.API.CONSUMER.MSG.NEXT.${names.streams.advisories}.${names.consumers.deadTasks}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(euWorker.request(`$JS.hub.API.STREAM.MSG.DELETE.${names.streams.tasks}`, seq, { timeout: 2000 }))).toBe(true);
  });

  it("cannot publish results for another region, and can for its own", async () => {
    expect(await denied(euWorker.request(names.subjects.results(AP), "{}", { timeout: 2000 }))).toBe(true);
    // Its own region's results subject is allowed (no stream captures it here: no responders, not a violation).
    const own = await jetstream(euWorker).publish(names.subjects.results(EU), "{}").then(
      () => "stored",
      (err: unknown) => (isPermissionViolation(err) ? "denied" : "allowed"),
    );
    expect(own).not.toBe("denied");
  });
});

describe("what a worker needs, it can do under the shipped permissions", () => {
  // The checkpoint and progress buckets, made by the engine as it provisions the hub.
  beforeAll(async () => {
    const engine = await topology.connectAs(topology.hub, ROLES.engine);
    const kvm = new Kvm(engine);
    for (const bucket of [names.buckets.checkpoints, names.buckets.progress]) await kvm.create(bucket);
  });

  // Before: the grants said "KV_fm_*", and a NATS wildcard is a whole token, so no bucket matched
  // and a worker was denied every checkpoint and progress read.
  it.each([
    ["a hub (us-east-1) worker", () => topology.connectAs(topology.hub, ROLES.worker("us-east-1")), undefined],
    ["an eu-west-1 worker on its leaf, through the hub's domain", () => topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU)), "hub"],
  ] as const)("%s writes and reads back a checkpoint, and writes a progress entry, under its region's keys", async (_who, connectWorker, domain) => {
    const nc = await connectWorker();
    const kvm = new Kvm(domain ? jetstream(nc, { domain }) : nc);
    const key = STEP_KEYS.key(domain ? EU : "us-east-1", "exec-1", "step");
    const checkpoints = await kvm.open(names.buckets.checkpoints, { allow_direct: true });
    await checkpoints.put(key, JSON.stringify({ at: 1 }));
    expect((await checkpoints.get(key))?.json()).toEqual({ at: 1 });
    await (await kvm.open(names.buckets.progress)).put(key, JSON.stringify({ at: 2 }));
    const engine = await new Kvm(await topology.connectAs(topology.hub, ROLES.engine)).open(names.buckets.progress);
    expect((await engine.get(key))?.json()).toEqual({ at: 2 });
  });
});

describe("the gateway's shipped credentials", () => {
  // POST /v1/events/:name publishes fm.events.<name>; the role lacked it and the route answered 500.
  it("may publish an event, as POST /v1/events does", async () => {
    const gateway = await topology.connectAs(topology.hub, ROLES.gateway);
    const outcome = await jetstream(gateway)
      .publish(names.subjects.event("order.paid"), JSON.stringify({ data: { orderId: "o-1" } }))
      .then(
        () => "stored",
        (err: unknown) => (isPermissionViolation(err) ? "denied" : "allowed"),
      );
    expect(outcome).not.toBe("denied");
  });

  it("cannot create, change, purge or delete a stream, nor publish tasks or results", async () => {
    const gateway = await topology.connectAs(topology.hub, ROLES.gateway);
    const config = JSON.stringify({ name: "GATEWAY_MADE", subjects: ["gw.>"] });
    expect(await denied(gateway.request("$JS.API.STREAM.CREATE.GATEWAY_MADE", config, { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(`$JS.API.STREAM.UPDATE.${names.streams.tasks}`, "{}", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(`$JS.API.STREAM.PURGE.${names.streams.results}`, "{}", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(`$JS.API.STREAM.DELETE.${names.streams.flows}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(`$JS.API.CONSUMER.DELETE.${names.streams.results}.${names.consumers.results}`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(names.subjects.task("us-east-1", "echo", "normal"), "{}", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(names.subjects.results("us-east-1"), "{}", { timeout: 2000 }))).toBe(true);
  });

  it("cannot read or write checkpoints, and may read the worker registry", async () => {
    const gateway = await topology.connectAs(topology.hub, ROLES.gateway);
    const checkpoints = `KV_${names.buckets.checkpoints}`;
    expect(await denied(gateway.request(`$JS.API.DIRECT.GET.${checkpoints}.$KV.${names.buckets.checkpoints}.exec-1.step-hub`, "", { timeout: 2000 }))).toBe(true);
    expect(await denied(gateway.request(`$KV.${names.buckets.checkpoints}.exec-1.step-hub`, "{}", { timeout: 2000 }))).toBe(true);
    const registry = await gateway.request(`$JS.API.STREAM.INFO.KV_${names.buckets.workers}`, "", { timeout: 2000 }).then(
      () => "answered",
      (err: unknown) => (isPermissionViolation(err) ? "denied" : "answered"),
    );
    expect(registry).toBe("answered");
  });
});
