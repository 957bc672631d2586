import { createNames, encode, silentLogger } from "@flowmonkey/shared";
import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { echo } from "../../src/handlers/index.js";
import { defineHandler, type AnyHandler } from "../../src/sdk/define-handler.js";
import { Heartbeat } from "../../src/runner/heartbeat.js";
import { PUBLISH_RETRY_DELAY_MS } from "../../src/runner/publish-result.js";
import { TaskPipeline } from "../../src/runner/task-pipeline.js";
import { makeTask, NO_BLOBS, REGION } from "../helpers.js";

/** A delivered message that records how it was settled. */
const names = createNames("fm");

function fakeMsg(body: unknown) {
  const settled: string[] = [];
  const msg = {
    data: encode(body),
    subject: names.subjects.task(REGION, "echo", "normal"),
    seq: 1,
    info: { deliveryCount: 1 },
    ack: () => void settled.push("ack"),
    ackAck: () => (settled.push("ack"), Promise.resolve(true)),
    nak: (delay?: number) => void settled.push(delay === undefined ? "nak" : `nak ${delay}`),
    term: () => void settled.push("term"),
    working: () => void settled.push("working"),
  };
  return { msg: msg as unknown as JsMsg, settled };
}

function pipeline(publish: () => Promise<unknown>, options: { capabilities?: string[]; resultGiveUpMs?: number; handlers?: AnyHandler[] } = {}) {
  const { capabilities, resultGiveUpMs } = options;
  const published: string[] = [];
  const bodies: unknown[] = [];
  const js = { publish: (subject: string, data: Uint8Array) => (published.push(subject), bodies.push(JSON.parse(new TextDecoder().decode(data))), publish()) } as unknown as JetStreamClient;
  const p = new TaskPipeline({
    runtime: {
      workerId: "w",
      tier: "small",
      region: REGION,
      log: silentLogger(),
      progress: { nc: {} as NatsConnection, subjects: names.subjects, kv: undefined },
      checkpoints: { kv: undefined, blobs: NO_BLOBS },
      blobs: NO_BLOBS,
      js,
    },
    handlers: new Map([echo, ...(options.handlers ?? [])].map((h) => [h.type, h])),
    ...(capabilities ? { capabilities } : {}),
    results: { js, subject: names.subjects.results(REGION), maxBytes: () => 1024 * 1024 },
    resultGiveUpMs,
  });
  return { p, published, bodies };
}

describe("TaskPipeline", () => {
  it("acks only after the result is stored", async () => {
    const { p, published } = pipeline(() => Promise.resolve({ stream: "R", seq: 1, duplicate: false }));
    const { msg, settled } = fakeMsg(makeTask({ input: 1 }));
    await p.run(msg, new Heartbeat(30_000));
    expect(published).toEqual([names.subjects.results(REGION)]);
    expect(settled).toEqual(["ack"]);
    expect(p.stats).toEqual({ completed: 1, failed: 0 });
  });

  it("keeps the task and retries a result the results stream could not take (a leader election), then acks", async () => {
    let failures = 2;
    const { p, published } = pipeline(() => (failures-- > 0 ? Promise.reject(new Error("no responders")) : Promise.resolve({ stream: "R", seq: 1 })));
    const { msg, settled } = fakeMsg(makeTask());
    // A 150 ms ack_wait: the heartbeat beats every 50 ms, so the retries (100 + 200 ms) keep the task with working().
    await p.run(msg, new Heartbeat(150));
    expect(published).toHaveLength(3);
    expect(settled.at(-1)).toBe("ack");
    expect(settled.filter((s) => s === "working").length).toBeGreaterThan(0);
    expect(settled.some((s) => s.startsWith("nak"))).toBe(false);
    expect(p.stats).toEqual({ completed: 1, failed: 0 });
  });

  it("naks with a delay, and never acks, when the result cannot be stored before it gives up", async () => {
    const { p, published } = pipeline(() => Promise.reject(new Error("no responders")), { resultGiveUpMs: 500 });
    const { msg, settled } = fakeMsg(makeTask());
    await p.run(msg, new Heartbeat(30_000));
    expect(settled).toEqual([`nak ${PUBLISH_RETRY_DELAY_MS}`]);
    expect(published.length).toBeGreaterThan(1);
    expect(p.stats).toEqual({ completed: 0, failed: 0 });
  });

  it("gives a result still being retried up at once when the worker is forced to stop", async () => {
    const { p } = pipeline(() => Promise.reject(new Error("no responders")));
    const { msg, settled } = fakeMsg(makeTask());
    const running = p.run(msg, new Heartbeat(30_000));
    await new Promise((r) => setTimeout(r, 50));
    p.abortAll(new Error("forced"));
    await running;
    expect(settled).toEqual([`nak ${PUBLISH_RETRY_DELAY_MS}`]);
  });

  it("hands a message delivered after draining began straight back", async () => {
    const { p, published } = pipeline(() => Promise.resolve({}));
    p.stopAccepting();
    const { msg, settled } = fakeMsg(makeTask());
    await p.run(msg, new Heartbeat(30_000));
    expect(settled).toEqual(["nak"]);
    expect(published).toEqual([]);
  });

  it("terminates an unreadable message without publishing anything", async () => {
    const { p, published } = pipeline(() => Promise.resolve({}));
    const { msg, settled } = fakeMsg({ hello: "world" });
    await p.run(msg, new Heartbeat(30_000));
    expect(settled).toEqual(["term"]);
    expect(published).toEqual([]);
  });

  it("refuses, without running it, a task whose step requires a capability the worker lacks: a retryable CAPABILITY_UNAVAILABLE result, then term", async () => {
    const { p, bodies } = pipeline(() => Promise.resolve({}), { capabilities: ["avx512"] });
    const { msg, settled } = fakeMsg(makeTask({ input: { ran: true }, require: ["gpu", "avx512"] }));
    await p.run(msg, new Heartbeat(30_000));
    expect(settled).toEqual(["term"]);
    expect(bodies).toEqual([
      expect.objectContaining({ outcome: "error", failure: expect.objectContaining({ code: "CAPABILITY_UNAVAILABLE", retryable: true, message: expect.stringMatching(/requires gpu,? /) }) }),
    ]);
    expect(bodies[0]).not.toHaveProperty("output");
    expect(p.stats).toEqual({ completed: 0, failed: 1 });
  });

  it("runs a task whose required capabilities the worker offers (and any task that requires none)", async () => {
    const { p, bodies } = pipeline(() => Promise.resolve({}), { capabilities: ["avx512", "gpu"] });
    for (const require of [["gpu"], ["avx512", "gpu"], undefined]) {
      const { msg, settled } = fakeMsg(makeTask({ input: 7, ...(require ? { require } : {}) }));
      await p.run(msg, new Heartbeat(30_000));
      expect(settled).toEqual(["ack"]);
    }
    expect(bodies.map((b) => (b as { outcome: string }).outcome)).toEqual(["success", "success", "success"]);
  });

  it("holds a copy delivered again while the attempt still runs here, runs the handler once, and acks both", async () => {
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const slow = defineHandler({
      type: "slow",
      async execute() {
        runs++;
        started();
        await gate;
        return { ok: true };
      },
    });
    const { p, published } = pipeline(() => Promise.resolve({ stream: "R", seq: 1 }), { handlers: [slow] });
    const task = makeTask({ type: "slow" });
    const first = fakeMsg(task);
    const again = fakeMsg(task); // the same attempt, delivered again (its heartbeats were lost)
    const heartbeat = new Heartbeat(30_000);
    const firstRun = p.run(first.msg, heartbeat);
    await running;
    const copyRun = p.run(again.msg, heartbeat);
    expect(heartbeat.size).toBe(2); // the copy is heartbeated too: it must not come back a third time
    release();
    await Promise.all([firstRun, copyRun]);
    expect(runs).toBe(1);
    expect(published).toHaveLength(1);
    expect(first.settled).toEqual(["ack"]);
    expect(again.settled).toEqual(["ack"]);
    expect(heartbeat.size).toBe(0);
    // Once settled, a later delivery of the same attempt runs again (the original is no longer here).
    const later = fakeMsg(task);
    await p.run(later.msg, heartbeat);
    expect(runs).toBe(2);
  });

  it("gives a held copy back with the original when the result cannot be stored", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const slow = defineHandler({ type: "slow", async execute() { started(); await gate; return 1; } });
    const { p } = pipeline(() => Promise.reject(new Error("no responders")), { handlers: [slow], resultGiveUpMs: 200 });
    const task = makeTask({ type: "slow" });
    const first = fakeMsg(task);
    const again = fakeMsg(task);
    const heartbeat = new Heartbeat(30_000);
    const firstRun = p.run(first.msg, heartbeat);
    await running;
    const copyRun = p.run(again.msg, heartbeat);
    release();
    await Promise.all([firstRun, copyRun]);
    expect(first.settled).toEqual([`nak ${PUBLISH_RETRY_DELAY_MS}`]);
    expect(again.settled).toEqual(["nak"]);
  });

  it("keeps a rejected task (unknown handler) on the heartbeat while its error result is retried", async () => {
    let failures = 2;
    const { p, published } = pipeline(() => (failures-- > 0 ? Promise.reject(new Error("no responders")) : Promise.resolve({ stream: "R", seq: 1 })));
    const { msg, settled } = fakeMsg(makeTask({ type: "nobody-serves-this" }));
    const heartbeat = new Heartbeat(150);
    await p.run(msg, heartbeat);
    expect(published).toHaveLength(3);
    expect(settled.filter((s) => s === "working").length).toBeGreaterThan(0);
    expect(settled.at(-1)).toBe("term");
    expect(heartbeat.size).toBe(0);
  });
});
