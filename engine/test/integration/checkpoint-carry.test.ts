/**
 * Carrying a step's checkpoint to the region of its next attempt, against a real nats-server:
 * checkpoints are kept under `<region>.<executionId>.<slot>`, and a region's workers may read
 * only their region's keys, so the engine copies the newest entry across before it publishes a
 * retry or a resumed run elsewhere. (The e2e across a hub and leaves: test/regions/routing.test.ts.)
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, createNames, provisionMesh, STEP_KEYS } from "@flowmonkey/shared";
import { createCheckpointCarry, type CheckpointCarry } from "../../src/context/checkpoint-carry.js";
import { createBlobBuckets, type BlobBuckets } from "../../src/context/blob-buckets.js";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";

const nats = useNatsServer();
let nc: NatsConnection;
let kv: KV;
let carry: CheckpointCarry;
let blobs: BlobBuckets;
let n = 0;

beforeAll(async () => {
  nc = await connect({ servers: nats.url });
  const names = createNames(uniquePrefix());
  await provisionMesh(nc, names, { heartbeatTimeoutMs: 60_000 });
  kv = await new Kvm(nc).open(names.buckets.checkpoints, { allow_direct: true });
  // The regions a step's attempts were sent to come from the engine's task rows; here, every region of these tests but "rogue-1".
  const regionsRunIn = async () => ["us-east-1", "eu-west-1", "ap-south-1"];
  blobs = createBlobBuckets(nc, names, 1);
  carry = createCheckpointCarry({ js: jetstream(nc), names, blobs, log: createLogger({ name: "carry-test", level: "silent" }), regionsRunIn });
});
afterAll(async () => {
  await nc?.close();
});

const value = async (key: string) => {
  const e = await kv.get(key);
  return e && e.operation === "PUT" ? e.json() : e ? e.operation : undefined;
};

describe("carrying a checkpoint to the next attempt's region", () => {
  it("copies the step's checkpoint from the region that saved it into the retry's region", async () => {
    const exec = `e${++n}`;
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "s"), JSON.stringify({ state: { rows: 7 } }));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 2 });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "s"))).toEqual({ state: { rows: 7 } });
  });

  it("copies a large checkpoint's blob from the saving region's bucket into the retry's region's", async () => {
    const exec = `e${++n}`;
    const envelope = { blob: `checkpoints/${exec}.s`, bytes: 5 };
    await blobs.ofRegion("ap-south-1").put(envelope.blob, new TextEncoder().encode('"big"'));
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "s"), JSON.stringify(envelope));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 2 });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "s"))).toEqual(envelope);
    expect(new TextDecoder().decode(await blobs.ofRegion("eu-west-1").get(envelope.blob))).toBe('"big"');
  });

  it("copies a large checkpoint's blob saved before keys carried a region from the shared bucket, also a map item's", async () => {
    const exec = `e${++n}`;
    const envelope = { blob: `checkpoints/${exec}.m.item-1-4`, bytes: 5 };
    await blobs.named("").put(envelope.blob, new TextEncoder().encode('"old"'));
    await kv.put(`${exec}.m.item-1-4`, JSON.stringify(envelope));
    await carry("eu-west-1", { taskId: `${exec}/m`, executionId: exec, stepId: "m", attempt: 2, item: { run: 1, index: 4 } });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "m.item-1-4"))).toEqual(envelope);
    expect(new TextDecoder().decode(await blobs.ofRegion("eu-west-1").get(envelope.blob))).toBe('"old"');
  });

  it("takes the newest of several regions' entries, and leaves a region that already has it alone", async () => {
    const exec = `e${++n}`;
    await kv.put(STEP_KEYS.key("eu-west-1", exec, "s"), JSON.stringify({ state: 1 }));
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "s"), JSON.stringify({ state: 2 }));
    await carry("us-east-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 3 });
    expect(await value(STEP_KEYS.key("us-east-1", exec, "s"))).toEqual({ state: 2 });
    const revision = (await kv.get(STEP_KEYS.key("us-east-1", exec, "s")))!.revision;
    await carry("us-east-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 4 });
    expect((await kv.get(STEP_KEYS.key("us-east-1", exec, "s")))!.revision).toBe(revision);
  });

  it("carries a newer clear as a delete: an older saved state does not come back", async () => {
    const exec = `e${++n}`;
    await kv.put(STEP_KEYS.key("us-east-1", exec, "s"), JSON.stringify({ state: "old" }));
    await kv.put(STEP_KEYS.key("eu-west-1", exec, "s"), JSON.stringify({ state: "newer" }));
    await kv.delete(STEP_KEYS.key("eu-west-1", exec, "s"));
    await carry("us-east-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 3 });
    expect(await value(STEP_KEYS.key("us-east-1", exec, "s"))).toBe("DEL");
  });

  it("carries a map item's own checkpoint, and a resumed run's; a first attempt has nothing to carry", async () => {
    const exec = `e${++n}`;
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "m.item-1-4"), JSON.stringify({ state: "item 4" }));
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "p"), JSON.stringify({ state: "paused" }));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "m", attempt: 2, item: { run: 1, index: 4 } });
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "p", attempt: 1, resume: { reason: "token" } });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "m.item-1-4"))).toEqual({ state: "item 4" });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "p"))).toEqual({ state: "paused" });
    await kv.put(STEP_KEYS.key("ap-south-1", exec, "f"), JSON.stringify({ state: "x" }));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "f", attempt: 1 });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "f"))).toBeUndefined();
  });

  it("carries a checkpoint saved before keys carried a region (a step paused across the upgrade)", async () => {
    const exec = `e${++n}`;
    await kv.put(`${exec}.s`, JSON.stringify({ state: "from before" }));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 1, resume: { reason: "token" } });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "s"))).toEqual({ state: "from before" });
  });

  it("copies nothing from a region the step never ran in (a worker may write any key of its own region)", async () => {
    const exec = `e${++n}`;
    await kv.put(STEP_KEYS.key("rogue-1", exec, "s"), JSON.stringify({ state: "made up" }));
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 2 });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "s"))).toBeUndefined();
  });

  it("with nothing saved anywhere, writes nothing", async () => {
    const exec = `e${++n}`;
    await carry("eu-west-1", { taskId: `${exec}/s`, executionId: exec, stepId: "s", attempt: 2 });
    expect(await value(STEP_KEYS.key("eu-west-1", exec, "s"))).toBeUndefined();
  });
});
