import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { createLogger, createNames, provisionMesh } from "@flowmonkey/shared";
import { createWorker } from "../../src/index.js";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { makeTask, publishTask, REGION, waitForResults } from "../helpers.js";

const nats = useNatsServer();

describe("a worker started before the engine", () => {
  it("waits for the streams to be provisioned, then serves its pool", async () => {
    const nc = await connect({ servers: nats.url });
    const names = createNames(uniquePrefix());
    const worker = createWorker({ nc, log: createLogger({ name: "w", level: "silent" }), prefix: names.prefix, region: REGION, handlers: ["echo"] });
    try {
      let started = false;
      const starting = worker.start().then(() => (started = true));
      // Nothing exists yet: the worker must still be waiting, not failed.
      await expect(Promise.race([starting.then(() => "started"), new Promise((r) => setTimeout(r, 300, "waiting"))])).resolves.toBe("waiting");
      expect(started).toBe(false);
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 60_000 });
      await starting;
      const mesh = { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, close: async () => undefined };
      await publishTask(mesh, makeTask({ input: { ok: 1 } }));
      const [result] = await waitForResults(mesh, 1);
      expect(result).toMatchObject({ outcome: "success", output: { ok: 1 } });
    } finally {
      await worker.close();
      await nc.close();
    }
  });
});

describe("heartbeat timeouts per handler pool", () => {
  it("sets each pool's ack_wait (all three priority lanes) from heartbeatTimeouts, the rest from the default", async () => {
    const nc = await connect({ servers: nats.url });
    const names = createNames(uniquePrefix());
    await provisionMesh(nc, names, { heartbeatTimeoutMs: 60_000 });
    const worker = createWorker({
      nc,
      log: createLogger({ name: "w", level: "silent" }),
      prefix: names.prefix,
      region: REGION,
      handlers: ["echo", "delay"],
      heartbeatTimeoutMs: 20_000,
      heartbeatTimeouts: { delay: 90_000 },
    });
    try {
      await worker.start();
      const jsm = await jetstreamManager(nc);
      const ackWaitMs = async (handler: string, priority: "high" | "normal" | "low") =>
        (await jsm.consumers.info(names.streams.tasks, names.consumers.taskPool(REGION, handler, priority))).config.ack_wait! / 1e6;
      expect(await Promise.all((["high", "normal", "low"] as const).map((p) => ackWaitMs("delay", p)))).toEqual([90_000, 90_000, 90_000]);
      expect(await Promise.all((["high", "normal", "low"] as const).map((p) => ackWaitMs("echo", p)))).toEqual([20_000, 20_000, 20_000]);
    } finally {
      await worker.close();
      await nc.close();
    }
  });

  it("refuses a timeout for a handler the worker does not serve, naming it", () => {
    expect(() =>
      createWorker({ nc: {} as never, log: createLogger({ name: "w", level: "silent" }), region: REGION, handlers: ["echo"], heartbeatTimeouts: { delay: 5000 } }),
    ).toThrow(/heartbeatTimeouts: delay is not one of this worker's handlers/);
  });
});
