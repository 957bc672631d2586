import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encode } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const MAX_BYTES = 16 * 1024;
const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
const text = (data: Uint8Array) => new TextDecoder().decode(data);

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, maxMessageBytes: MAX_BYTES });
  await mesh.putFlow({ id: "ok", steps: [{ id: "only", handler: "echo", input: "{% input %}" }] });
});
afterAll(async () => {
  await mesh?.close();
});

async function rejections(): Promise<Array<{ subject: string; code: string; reason: string }>> {
  const { rows } = await mesh.engine.db.query<{ subject: string; code: string; reason: string }>(
    "SELECT subject, code, reason FROM rejections ORDER BY id",
  );
  return rows;
}

describe("bad input on fm.flows.start.<flow> (nats pub)", () => {
  it("records each rejection with its reason, loses nothing else and keeps going", async () => {
    const s = mesh.names.subjects;
    const raw = new TextEncoder();
    mesh.nc.publish(s.flowStart("ok"), raw.encode("this is not json"));
    mesh.nc.publish(s.flowStart("ok"), encode({ input: {}, surprise: true }));
    mesh.nc.publish(s.flowStart("ok"), encode({ input: {}, priority: "urgent" }));
    mesh.nc.publish(s.flowStart("nope"), encode({ input: {} }));
    mesh.nc.publish(s.flowStart("ok"), encode({ input: { blob: "x".repeat(MAX_BYTES) } }));
    mesh.nc.publish(s.flowStart("ok"), raw.encode(""));
    mesh.nc.publish(s.flowStart("ok"), encode({ input: { fine: true }, executionId: "after-the-bad-ones" }));

    const view = await mesh.waitForStatus("after-the-bad-ones", "completed");
    expect(view.output).toEqual({ fine: true });
    const rows = await waitFor(async () => {
      const r = await rejections();
      return r.length >= 6 ? r : undefined;
    });
    const byCode = rows.map((r) => r.code).sort();
    expect(byCode).toEqual(["FLOW_NOT_FOUND", "INVALID_INPUT", "INVALID_INPUT", "INVALID_JSON", "INVALID_JSON", "PAYLOAD_TOO_LARGE"]);
    expect(rows.find((r) => r.reason.includes("surprise"))?.code).toBe("INVALID_INPUT");
    expect(rows.find((r) => r.reason.includes("priority"))?.reason).toMatch(/priority/);
    expect(rows.find((r) => r.code === "FLOW_NOT_FOUND")?.subject).toBe(s.flowStart("nope"));
    // Nothing is left on the stream to be redelivered: rejected starts were terminated, not dropped silently.
    const { jetstreamManager } = await import("@nats-io/jetstream");
    const jsm = await jetstreamManager(mesh.nc);
    const info = await waitFor(async () => {
      const i = await jsm.consumers.info(mesh.names.streams.flows, mesh.names.consumers.intake);
      return i.num_pending + i.num_ack_pending === 0 ? i : undefined;
    }, { timeoutMs: 3000, message: "intake consumer to settle every start" }).catch(async (err) => {
      console.log(JSON.stringify(await jsm.consumers.info(mesh.names.streams.flows, mesh.names.consumers.intake)));
      throw err;
    });
    expect(info.num_redelivered).toBe(0);
  });
});

describe("bad input on fm.api.* (nats req)", () => {
  const request = async (subject: string, body: Uint8Array) => {
    const reply = await mesh.nc.request(subject, body, { timeout: 5000 });
    return JSON.parse(text(reply.data)) as { error?: { code: string; message: string }; executionId?: string };
  };

  it("answers every bad request with {error:{code,message}}", async () => {
    const s = mesh.names.subjects;
    expect((await request(s.apiFlowStart("ok"), new TextEncoder().encode("{nope"))).error?.code).toBe("INVALID_JSON");
    expect((await request(s.apiFlowStart("ok"), encode({ input: 1, extra: 2 }))).error).toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringContaining("extra"),
    });
    expect((await request(s.apiFlowStart("missing"), encode({ input: {} }))).error?.code).toBe("FLOW_NOT_FOUND");
    expect((await request(s.apiFlowStart("ok"), encode({ input: "y".repeat(MAX_BYTES) }))).error?.code).toBe("PAYLOAD_TOO_LARGE");
    expect((await request(s.api("executions.get"), encode({ executionId: "does-not-exist" }))).error?.code).toBe(
      "EXECUTION_NOT_FOUND",
    );
    expect((await request(s.api("executions.get"), encode({ executionId: "has.dots" }))).error?.code).toBe("INVALID_INPUT");
    expect((await request(s.api("flows.put"), encode({ id: "cyclic", steps: [{ id: "a", handler: "echo", dependsOn: ["b"] }, { id: "b", handler: "echo", dependsOn: ["a"] }] }))).error).toMatchObject({
      code: "INVALID_FLOW",
      message: expect.stringContaining("a -> b -> a"),
    });
    // A JSONata syntax error is refused when the flow is pushed, naming where, not at run time.
    expect((await request(s.api("flows.put"), encode({ id: "typo", steps: [{ id: "a", handler: "echo", input: { x: "{% $foo( %}" } }] }))).error).toMatchObject({
      code: "INVALID_FLOW",
      message: expect.stringMatching(/flow\.steps\[0\]\.input\.x: cannot parse \{% \$foo\( %\}/),
    });
    // After all that, a good request still works.
    const good = await request(s.apiFlowStart("ok"), encode({ input: { still: "fine" } }));
    expect(good.executionId).toBeTruthy();
    expect((await mesh.waitForStatus(good.executionId!, "completed")).output).toEqual({ still: "fine" });
  });
});
