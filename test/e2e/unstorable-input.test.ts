/**
 * Valid JSON PostgreSQL cannot store (\u0000, an unpaired surrogate, nesting past 128 levels)
 * against a real mesh (issue 18, items 4 and 5). It used to be answered UNAVAILABLE (503,
 * retryable), redelivered 8 times and dropped without a record when published, and a raw NUL
 * byte in a bad message made its rejection row itself unstorable, failing the whole batch. A
 * handler output holding \u0000 was lost and its step stayed dispatched until its timeout.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { defineHandler } from "@flowmonkey/worker";
import { encode, type ExecutionView } from "@flowmonkey/shared";
import { beforeAll, describe, expect, it } from "vitest";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const mesh = useMesh(() => ({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["echo"] }] }));
const text = new TextEncoder();
const NUL_INPUT = '{"input":{"s":"a\\u0000b"}}';
const SURROGATE_INPUT = '{"input":{"s":"\\ud800"}}';
const DEEP_INPUT = `{"input":${"[".repeat(6000)}${"]".repeat(6000)}}`;

/** Returns its input's `text` with a NUL in it: an output the database cannot store. */
const nulOutput = defineHandler({
  type: "nul-output",
  version: "1",
  execute: () => ({ text: "before\u0000after" }),
});

beforeAll(async () => {
  await mesh.putFlow({ id: "ok", steps: [{ id: "only", handler: "echo", input: "{% input %}" }] });
  await mesh.putFlow({ id: "nul", steps: [{ id: "emit", handler: "nul-output", timeoutMs: 120_000 }] });
  // Served by no worker: its attempt stays dispatched, so a hand-made result can answer it.
  await mesh.putFlow({ id: "ghost", steps: [{ id: "d", handler: "ghost", timeoutMs: 120_000 }] });
  // Definitions are plain text (a backslash, a "u"...); JSONata turns the escape into the character.
  await mesh.putFlow({ id: "expr-nul", steps: [{ id: "a", handler: "echo", input: { s: '{% "a\\u0000b" %}' } }] });
  await mesh.putFlow({ id: "expr-out", steps: [{ id: "a", handler: "echo", input: {} }], output: '{% "\\ud800" %}' });
  await mesh.startWorker({ handlers: [nulOutput] });
});

async function rejections(subject: string): Promise<Array<{ code: string; reason: string; excerpt: string | null }>> {
  const { rows } = await mesh.engine.db.query<{ code: string; reason: string; excerpt: string | null }>(
    "SELECT code, reason, excerpt FROM rejections WHERE subject = $1 ORDER BY id",
    [subject],
  );
  return rows;
}

async function request(subject: string, body: string): Promise<{ error?: { code: string; message: string }; executionId?: string }> {
  const reply = await mesh.nc.request(subject, text.encode(body), { timeout: 5000 });
  return JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { code: string; message: string }; executionId?: string };
}

describe("fm.api refuses text the store cannot keep as invalid input", () => {
  it.each([
    ["\\u0000", NUL_INPUT, /input\.s contains \\u0000/],
    ["a lone \\ud800", SURROGATE_INPUT, /input\.s contains an unpaired UTF-16 surrogate \\ud800/],
    ["nesting 6000 deep", DEEP_INPUT, /nests deeper than 128 levels/],
  ])("a start with %s answers UNSUPPORTED_JSON (400, not retryable)", async (_name, body, message) => {
    const reply = await mesh.nc.request(mesh.names.subjects.apiFlowStart("ok"), text.encode(body), { timeout: 5000 });
    const parsed = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { code: string; message: string } };
    expect(parsed.error?.code).toBe("UNSUPPORTED_JSON");
    expect(parsed.error?.message).toMatch(message);
    // The service error header carries the code table's HTTP status.
    expect(reply.headers?.get("Nats-Service-Error-Code")).toBe("400");
  });

  it("every other endpoint too (resume payload, flow definition)", async () => {
    const s = mesh.names.subjects;
    expect((await request(s.api("resume"), '{"resumeToken":"t","payload":{"x":"\\u0000"}}')).error?.code).toBe("UNSUPPORTED_JSON");
    expect((await request(s.api("flows.put"), '{"id":"bad","steps":[{"id":"a","handler":"echo","input":"\\udfff"}]}')).error?.code).toBe("UNSUPPORTED_JSON");
    const good = await request(s.apiFlowStart("ok"), '{"input":{"emoji":"\\ud83d\\ude00"}}');
    expect((await mesh.waitForStatus(good.executionId!, "completed")).output).toEqual({ emoji: "\u{1F600}" });
  });
});

describe("plain starts (nats pub) with such text", () => {
  it("are recorded as rejections once, never redelivered, beside a good start in the same batch", async () => {
    const s = mesh.names.subjects;
    const flowSubject = s.flowStart("ok");
    for (const body of [NUL_INPUT, SURROGATE_INPUT, DEEP_INPUT]) mesh.nc.publish(flowSubject, text.encode(body));
    // A raw NUL byte makes the body invalid JSON; its excerpt used to make the rejection row unstorable.
    mesh.nc.publish(flowSubject, new Uint8Array([0x7b, 0x22, 0x69, 0x00, 0x22, 0x7d]));
    mesh.nc.publish(flowSubject, encode({ input: { fine: true }, executionId: "good-beside-bad" }));

    expect((await mesh.waitForStatus("good-beside-bad", "completed")).output).toEqual({ fine: true });
    const rows = await waitFor(async () => {
      const r = await rejections(flowSubject);
      return r.length >= 4 ? r : undefined;
    }, { message: "four rejections of the bad starts" });
    expect(rows.map((r) => r.code).sort()).toEqual(["INVALID_JSON", "UNSUPPORTED_JSON", "UNSUPPORTED_JSON", "UNSUPPORTED_JSON"]);
    expect(rows.find((r) => r.code === "INVALID_JSON")?.excerpt).toBe('{"i\\u0000"}');
    const jsm = await jetstreamManager(mesh.nc);
    const info = await waitFor(async () => {
      const i = await jsm.consumers.info(mesh.names.streams.flows, mesh.names.consumers.intake);
      return i.num_pending + i.num_ack_pending === 0 ? i : undefined;
    }, { message: "the intake consumer to settle every start" });
    expect(info.num_redelivered).toBe(0);
  });
});

describe("events and results with such text", () => {
  it("an event is recorded as a rejection and resumes nothing", async () => {
    const subject = mesh.names.subjects.event("order.paid");
    const h = natsHeaders();
    h.set("Nats-Msg-Id", "nul-event");
    const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
    await js.publish(subject, text.encode('{"data":{"note":"\\u0000"}}'), { headers: h });
    const rows = await waitFor(async () => ((await rejections(subject)).length ? rejections(subject) : undefined), { message: "the event's rejection" });
    expect(rows[0]).toMatchObject({ code: "UNSUPPORTED_JSON", reason: expect.stringContaining("data.note contains \\u0000") });
  });

  it("a result that is not JSON with a raw NUL byte is recorded, and does not hold back its batch", async () => {
    const subject = mesh.names.subjects.results("us-east-1");
    mesh.nc.publish(subject, new Uint8Array([0x00, 0x7b, 0x7d]));
    const started = await request(mesh.names.subjects.apiFlowStart("ok"), '{"input":{"after":"nul result"}}');
    await mesh.waitForStatus(started.executionId!, "completed");
    const rows = await waitFor(async () => ((await rejections(subject)).some((r) => r.code === "INVALID_JSON") ? rejections(subject) : undefined));
    expect(rows.find((r) => r.code === "INVALID_JSON")?.excerpt).toBe("\\u0000{}");
  });
});

describe("a handler output the store cannot keep (item 5)", () => {
  const stepOf = (view: ExecutionView, id: string) => view.steps.find((s) => s.stepId === id)!;

  it("fails its step at once with UNSUPPORTED_JSON (the worker says so before publishing)", async () => {
    const t0 = Date.now();
    const { executionId } = await mesh.api.start("nul", { input: {} });
    const view = await mesh.waitForStatus(executionId, "failed");
    // The step's timeout is 120 s: this is the worker's answer, not a timeout.
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(stepOf(view, "emit").error).toMatchObject({ code: "UNSUPPORTED_JSON", retryable: false, message: expect.stringContaining("text contains \\u0000") });
    expect(view.error?.code).toBe("UNSUPPORTED_JSON");
  });

  it("a result published by a worker that does not check fails the step the same way (the engine checks too)", async () => {
    const { executionId } = await mesh.api.start("ghost", { input: {} });
    await waitFor(async () => stepOf(await mesh.api.get(executionId), "d").status === "dispatched");
    const at = new Date().toISOString();
    const body = JSON.stringify({
      taskId: `${executionId}/d`,
      executionId,
      stepId: "d",
      attempt: 1,
      outcome: "success",
      output: { deep: { "key\u0000": 1 } },
      contextUpdates: [{ op: "set", path: "x", value: "\ud800" }],
      metrics: { startedAt: at, completedAt: at, durationMs: 1, workerId: "careless-worker", region: "us-east-1" },
    });
    mesh.nc.publish(mesh.names.subjects.results("us-east-1"), text.encode(body));
    const view = await mesh.waitForStatus(executionId, "failed");
    expect(stepOf(view, "d").error).toMatchObject({ code: "UNSUPPORTED_JSON", retryable: false, message: expect.stringMatching(/result cannot be stored: (output\.deep has a key|contextUpdates\[0\]\.value contains an unpaired)/) });
    expect(view.context).toEqual({});
    const { rows } = await mesh.engine.db.query<{ status: string; worker_id: string }>("SELECT status, worker_id FROM tasks WHERE task_id = $1", [`${executionId}/d`]);
    expect(rows).toEqual([{ status: "failed", worker_id: "careless-worker" }]);
  });

  it("an expression that makes such text fails its step, or its execution's output, instead of the transaction", async () => {
    const { executionId } = await mesh.api.start("expr-nul", { input: {} });
    const view = await mesh.waitForStatus(executionId, "failed");
    expect(stepOf(view, "a").error).toMatchObject({ code: "UNSUPPORTED_JSON", message: expect.stringContaining("input of step a: s contains \\u0000") });
    const out = await mesh.api.start("expr-out", { input: {} });
    const outView = await mesh.waitForStatus(out.executionId, "failed");
    expect(outView.error).toMatchObject({ code: "UNSUPPORTED_JSON", message: expect.stringContaining("the flow's output: (root) contains an unpaired") });
  });

  it("the engine still answers fm.api.health", async () => {
    expect(await mesh.api.health()).toBeTruthy();
  });
});
