/**
 * shared/src/nats/settled-requests.ts: a request that got its answer no longer builds a
 * RequestError (with its stack) on its way out, and requests still end as they always did —
 * answered, refused for want of responders, timed out, cancelled — on a real nats-server,
 * through the connection every engine and worker makes (connectNats).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, createLogger } from "@flowmonkey/shared";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";

// request.js reads `errors_1.RequestError` from this module's exports at each use: counting
// constructions there counts every RequestError the requests build.
// (The package's exports map hides lib/errors; its path beside the entry point is the same module.)
const require = createRequire(import.meta.url);
const errors = require(join(dirname(require.resolve("@nats-io/nats-core")), "errors.js")) as { RequestError: new (...args: never[]) => Error };
let built = 0;
const Original = errors.RequestError;
errors.RequestError = new Proxy(Original, {
  construct(target, args, newTarget) {
    built++;
    return Reflect.construct(target, args, newTarget) as object;
  },
});

let server: NatsServerHandle;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: server.url, name: "settled-requests", log: createLogger({ name: "test", level: "silent" }) });
  nc.subscribe("echo", { callback: (_err, msg) => void msg.respond(msg.data) });
  await nc.flush();
});

afterAll(async () => {
  errors.RequestError = Original;
  await nc?.close();
  await server?.stop();
});

describe("requests through connectNats", () => {
  it("build no error once answered: 200 requests, 50 JetStream publishes and 50 ackAcks", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "SETTLED", subjects: ["settled.>"] });
    await jsm.consumers.add("SETTLED", { durable_name: "c", ack_policy: "explicit" });
    const js = jetstream(nc);
    built = 0;
    for (let i = 0; i < 200; i++) expect(new TextDecoder().decode((await nc.request("echo", `m${i}`, { timeout: 5000 })).data)).toBe(`m${i}`);
    for (let i = 0; i < 50; i++) expect((await js.publish(`settled.${i}`, "x")).seq).toBe(i + 1);
    const consumer = await js.consumers.get("SETTLED", "c");
    const batch = await consumer.fetch({ max_messages: 50, expires: 5000 });
    let acked = 0;
    for await (const m of batch) {
      expect(await m.ackAck()).toBe(true);
      if (++acked === 50) break;
    }
    expect(acked).toBe(50);
    expect(built).toBe(0);
  });

  it("still refuse a subject nobody answers, time out, and reject a pending request on close", async () => {
    await expect(nc.request("nobody.home", "x", { timeout: 2000 })).rejects.toMatchObject({ name: "RequestError" });
    const silent = nc.subscribe("silent");
    await expect(nc.request("silent", "x", { timeout: 200 })).rejects.toMatchObject({ name: "TimeoutError" });
    silent.unsubscribe();

    const other = await connectNats({ url: server.url, name: "settled-requests-close", log: createLogger({ name: "test", level: "silent" }) });
    other.subscribe("never");
    const pending = other.request("never", "x", { timeout: 10_000 });
    await other.close();
    await expect(pending).rejects.toBeInstanceOf(Error);
  });
});
