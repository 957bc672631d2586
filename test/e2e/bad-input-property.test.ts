/**
 * Property-based (fast-check): generated bad JSON, unicode edge cases and large values thrown at
 * every entry of a real mesh — fm.api requests, plain starts on fm.flows.start.*, results on
 * fm.results.<region> and the gateway's HTTP — and the promise of issue 18 checked for each:
 * every input is answered (a reply whose error code is a client error, never a 5xx such as
 * UNAVAILABLE) or recorded (an execution or a rejection row, each exactly once), and the engine
 * stays healthy (fm.api.health answers, a good start still completes).
 *
 * Runs are kept modest (a few hundred inputs, seeded by fast-check; a failure prints its seed
 * and the shrunk input) so the file takes seconds, not minutes.
 */
import { randomUUID } from "node:crypto";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import fc from "fast-check";
import { createGateway, type Gateway } from "@flowmonkey/gateway";
import { createLogger, ERROR_CODES, isErrorCode } from "@flowmonkey/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const MAX_BYTES = 64 * 1024;
const RUNS = 200;
const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let gateway: Gateway;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, maxMessageBytes: MAX_BYTES, workers: [{ handlers: ["echo"] }] });
  for (const id of ["api", "pub", "http", "good"]) await mesh.putFlow({ id, steps: [{ id: "only", handler: "echo", input: "{% input %}" }] });
  gateway = createGateway({
    nc: mesh.nc,
    log: createLogger({ name: "gateway-test", level: process.env["TEST_LOG_LEVEL"] ?? "silent" }),
    prefix: mesh.prefix,
    port: 0,
    host: "127.0.0.1",
    maxMessageBytes: MAX_BYTES,
  });
  await gateway.start();
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

// ---- generators ------------------------------------------------------------------------------

/** Characters that break things: NUL, lone surrogates, a pair, BOM, line separators, noncharacters. */
const edgeChar = fc.constantFrom("\u0000", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\ufeff", "\u2028", "\uffff", "\u001f", '"', "\\", "é", "字");
const hostileText = fc.string({ unit: fc.oneof(edgeChar, fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 })), maxLength: 24 });
const hostileJson = fc.jsonValue({ maxDepth: 4, stringUnit: fc.oneof(edgeChar, fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 })) });
const nested = fc.record({ depth: fc.integer({ min: 100, max: 8000 }), open: fc.constantFrom("[", '{"a":') }).map(({ depth, open }) => {
  const close = open === "[" ? "]" : "}";
  return `${open.repeat(depth)}1${close.repeat(depth)}`;
});
const large = fc.integer({ min: MAX_BYTES - 64, max: MAX_BYTES * 2 }).map((n) => JSON.stringify({ input: { pad: "x".repeat(n) } }));
const encodeText = (t: string) => new TextEncoder().encode(t);

/** A message body: random bytes, broken JSON, a hostile value alone or inside a plausible envelope, deep or large JSON. */
const body: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom("", "{", "null", "[]", '{"input":', "\u0000", '{"input":1}}').map(encodeText),
  hostileJson.map((v) => encodeText(JSON.stringify(v) ?? "null")),
  fc.record({ input: hostileJson, context: fc.dictionary(hostileText, hostileJson, { maxKeys: 3 }) }, { requiredKeys: [] }).map((v) => encodeText(JSON.stringify(v))),
  fc.record({ input: hostileJson, labels: fc.dictionary(hostileText, hostileText, { maxKeys: 2 }), tenantId: hostileText }, { requiredKeys: ["input"] }).map((v) => encodeText(JSON.stringify(v))),
  nested.map((t) => encodeText(`{"input":${t}}`)),
  large.map(encodeText),
  // A raw NUL (and other control bytes) inside otherwise plausible JSON text.
  fc.tuple(hostileText, fc.constantFrom(0x00, 0x01, 0x1f, 0xff)).map(([t, b]) => {
    const bytes = encodeText(JSON.stringify({ input: { s: t } }));
    const out = new Uint8Array(bytes.length + 1);
    out.set(bytes.subarray(0, 12));
    out[12] = b;
    out.set(bytes.subarray(12), 13);
    return out;
  }),
);

/** A task result that looks real at a glance: hostile ids, outputs and regions. */
const result = fc
  .record({
    taskId: fc.oneof(hostileText, fc.constant("x/y")),
    executionId: fc.oneof(hostileText, fc.uuid()),
    stepId: fc.oneof(hostileText, fc.constant("only")),
    attempt: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.constant(1)),
    outcome: fc.constantFrom("success", "failure", "wait", "error", "bogus"),
    output: hostileJson,
    failure: fc.record({ code: hostileText, message: hostileText, retryable: fc.boolean() }),
    metrics: fc.record({ startedAt: fc.constant(new Date().toISOString()), completedAt: fc.constant(new Date().toISOString()), durationMs: fc.nat(), workerId: hostileText, region: fc.constantFrom("us-east-1", "eu-west-1", "bad region") }),
  }, { requiredKeys: ["taskId", "executionId", "stepId", "attempt", "outcome", "metrics"] })
  .map((r) => encodeText(JSON.stringify(r)));

// ---- checks --------------------------------------------------------------------------------------

interface Reply {
  executionId?: string;
  error?: { code: string; message: string };
}

function expectAnswered(reply: Reply, what: string): void {
  if (reply.error === undefined) return;
  expect(isErrorCode(reply.error.code), `${what}: known code ${reply.error.code}`).toBe(true);
  // A client's bad input is the client's error: never an outage the client would retry.
  expect(ERROR_CODES[reply.error.code as keyof typeof ERROR_CODES].httpStatus, `${what}: ${reply.error.code} ${reply.error.message}`).toBeLessThan(500);
}

async function expectHealthy(): Promise<void> {
  expect((await mesh.api.health()).status).toBe("ok");
}

async function countWhere(sql: string, params: unknown[]): Promise<number> {
  return (await mesh.engine.db.query<{ n: number }>(sql, params)).rows[0]!.n;
}

describe("generated bad input", () => {
  it("fm.api: every request is answered, with a client error code or a result", async () => {
    const s = mesh.names.subjects;
    const subjects = [s.apiFlowStart("api"), s.api("executions.get"), s.api("resume"), s.api("flows.put"), s.api("executions.list"), s.api("executions.cancel")];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...subjects), body, async (subject, data) => {
        const reply = await mesh.nc.request(subject, data, { timeout: 10_000 });
        expectAnswered(JSON.parse(new TextDecoder().decode(reply.data)) as Reply, subject);
      }),
      { numRuns: RUNS * 2 },
    );
    await expectHealthy();
  });

  it("plain starts: each becomes exactly one execution or one rejection, and none is redelivered", async () => {
    const subject = mesh.names.subjects.flowStart("pub");
    const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
    let published = 0;
    await fc.assert(
      fc.asyncProperty(body, async (data) => {
        // A unique Nats-Msg-Id: two equal bodies are two starts (and a stored publish, so none is lost on the way).
        const h = natsHeaders();
        h.set("Nats-Msg-Id", randomUUID());
        await js.publish(subject, data, { headers: h }).then(
          () => published++,
          // A body over the server's max_payload never reaches the stream: the publisher is told.
          (err: unknown) => expect(String(err)).toMatch(/MAX_PAYLOAD|maximum payload/i),
        );
      }),
      { numRuns: RUNS },
    );
    const recorded = async () =>
      (await countWhere("SELECT count(*)::int AS n FROM executions WHERE flow_id = 'pub'", [])) +
      (await countWhere("SELECT count(*)::int AS n FROM rejections WHERE subject = $1", [subject]));
    await waitFor(async () => (await recorded()) >= published, { timeoutMs: 30_000, message: `${published} starts recorded` });
    expect(await recorded()).toBe(published);
    const jsm = await jetstreamManager(mesh.nc);
    const info = await waitFor(async () => {
      const i = await jsm.consumers.info(mesh.names.streams.flows, mesh.names.consumers.intake);
      return i.num_pending + i.num_ack_pending === 0 ? i : undefined;
    }, { message: "the intake consumer to settle" });
    expect(info.num_redelivered).toBe(0);
    await expectHealthy();
  });

  it("results: each forged or broken result is recorded as one rejection", async () => {
    const js = (await import("@nats-io/jetstream")).jetstream(mesh.nc);
    const subject = mesh.names.subjects.results("us-east-1");
    const before = await countWhere("SELECT count(*)::int AS n FROM rejections WHERE subject = $1", [subject]);
    let published = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(result, body), async (data) => {
        await js.publish(subject, data).then(
          () => published++,
          (err: unknown) => expect(String(err)).toMatch(/MAX_PAYLOAD|maximum payload/i),
        );
      }),
      { numRuns: RUNS },
    );
    const recorded = async () => (await countWhere("SELECT count(*)::int AS n FROM rejections WHERE subject = $1", [subject])) - before;
    await waitFor(async () => (await recorded()) >= published, { timeoutMs: 30_000, message: `${published} results recorded` });
    expect(await recorded()).toBe(published);
    await expectHealthy();
  });

  it("HTTP: every body is answered 202 or a 4xx problem, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("/v1/flows/http/executions", "/v1/resume", "/v1/events/probe.event"), body, async (path, data) => {
        const res = await fetch(`${gateway.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: data });
        const text = await res.text();
        expect(res.status, `${path} → ${res.status} ${text.slice(0, 300)}`).toBeLessThan(500);
        if (res.status >= 400) expect(isErrorCode((JSON.parse(text) as { code?: string }).code), text.slice(0, 300)).toBe(true);
      }),
      { numRuns: RUNS },
    );
    await expectHealthy();
  });

  it("after all of it, a good start still completes", async () => {
    const { executionId } = await mesh.api.start("good", { input: { still: "fine", emoji: "\u{1F600}" } });
    expect((await mesh.waitForStatus(executionId, "completed")).output).toEqual({ still: "fine", emoji: "\u{1F600}" });
  });
});
