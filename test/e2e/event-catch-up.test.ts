/**
 * An event that arrives before its wait is recorded still resumes it (the engine's catch-up
 * after the wait is committed), against a real nats-server and PostgreSQL:
 *  - a handler that emits the reply it waits for and only then returns ctx.wait is resumed by
 *    it at once (not by its 30 s timeout), once;
 *  - an event stored before the attempt was dispatched does not resume it;
 *  - the catch-up applies the wait's filter: events it rejects do not resume it, the first it
 *    accepts does;
 *  - one event resumes a step once, even when the step waits again for it right away;
 *  - a catch-up racing the live event consumer for the same wait resumes it once;
 *  - the engine marks a wait caught up once its catch-up after the commit ran; a catch-up that
 *    fails is logged with the wait it leaves parked, and the wait still works;
 *  - a catch-up reads at most its cap of events, and says when it stopped there.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, encode, type ExecutionView } from "@flowmonkey/shared";
import { defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { createFlowRegistry } from "../../engine/src/flows/registry.js";
import { createRelay } from "../../engine/src/outbox/relay.js";
import { createEventCatchUp } from "../../engine/src/waits/event-catch-up.js";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

/** The engine's clock-skew margin here: an event stored this long before a dispatch is the attempt's. */
const SKEW_MS = 250;

/** Runs of `replies-first` per execution. */
const runs = new Map<string, number>();

/**
 * Emits events (its "reply", as an external service answering within milliseconds would) and
 * only then returns a wait for that event name, filtered on `data.ref` = its execution id.
 * Resumed, it returns why, with the payload.
 */
const repliesFirst = defineHandler({
  type: "replies-first",
  version: "1",
  input: z.object({
    event: z.string(),
    /** `ref: "self"` stands for this execution's id, so the wait's filter accepts it. */
    emit: z.array(z.object({ ref: z.string(), n: z.number() })),
    timeoutMs: z.number().int(),
    /** Match on `data.ref` = this (default: the execution's id). */
    waitFor: z.string().optional(),
  }),
  async execute(ctx) {
    const executionId = ctx.task.executionId;
    runs.set(executionId, (runs.get(executionId) ?? 0) + 1);
    if (ctx.resume) return { reason: ctx.resume.reason, payload: ctx.resume.payload ?? null, event: ctx.resume.event ?? null };
    for (const e of ctx.input.emit) await ctx.events.emit(ctx.input.event, { ref: e.ref === "self" ? executionId : e.ref, n: e.n });
    return ctx.wait({ resumeOn: { event: ctx.input.event, filter: `data.ref = '${ctx.input.waitFor ?? executionId}'` }, timeoutMs: ctx.input.timeoutMs });
  },
});

/**
 * Emits its reply and waits for it; resumed by it, waits again at once for the same event name
 * and filter (the event that just resumed it is well inside the skew margin of the new attempt).
 */
const waitsTwice = defineHandler({
  type: "waits-twice",
  version: "1",
  input: z.object({ event: z.string() }),
  async execute(ctx) {
    const executionId = ctx.task.executionId;
    const run = (runs.get(executionId) ?? 0) + 1;
    runs.set(executionId, run);
    const resumeOn = { event: ctx.input.event, filter: `data.ref = '${executionId}'` };
    if (run === 1) {
      await ctx.events.emit(ctx.input.event, { ref: executionId, n: 1 });
      return ctx.wait({ resumeOn, timeoutMs: 30_000 });
    }
    if (run === 2) return ctx.wait({ resumeOn, timeoutMs: 1500 });
    return { reason: ctx.resume?.reason ?? null, payload: ctx.resume?.payload ?? null };
  },
});

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["wait", "echo"], concurrency: 4 }],
  engine: { waitTimerIntervalMs: 200, eventCatchUpClockSkewMs: SKEW_MS },
}));

const stepOf = (view: ExecutionView, stepId: string) => view.steps.find((s) => s.stepId === stepId)!;

async function attemptsOf(executionId: string, stepId: string): Promise<string[]> {
  const { rows } = await mesh.engine.db.query<{ status: string }>("SELECT status FROM tasks WHERE execution_id = $1 AND step_id = $2 ORDER BY attempt", [executionId, stepId]);
  return rows.map((r) => r.status);
}

let worker: Promise<unknown> | undefined;
const withWorker = () => (worker ??= mesh.startWorker({ handlers: [repliesFirst, waitsTwice], concurrency: 8 }));

describe("events that came before their wait was recorded", () => {
  it("a handler that emits its reply before returning ctx.wait is resumed by it at once, once", async () => {
    await withWorker();
    await mesh.putFlow({
      id: "ask-and-wait",
      steps: [
        { id: "ask", handler: "replies-first", input: { event: "reply.ready", emit: [{ ref: "self", n: 1 }], timeoutMs: 30_000 } },
        { id: "after", handler: "echo", input: { got: "{% steps.ask.payload %}" } },
      ],
    });
    // Several at once: some catch-ups race the live consumer for the same event.
    const started = Date.now();
    const ids = await Promise.all(Array.from({ length: 6 }, async () => (await mesh.api.start("ask-and-wait", { input: {} })).executionId));
    for (const executionId of ids) {
      // Well inside the wait's 30 s timeout: the event resumed it, not the timer.
      const done = await mesh.waitForStatus(executionId, ["completed", "failed"], 10_000);
      expect(done.status).toBe("completed");
      expect(stepOf(done, "ask").output).toEqual({
        reason: "event",
        payload: { ref: executionId, n: 1 },
        event: expect.objectContaining({ name: "reply.ready", executionId, stepId: "ask" }) as unknown,
      });
      expect(stepOf(done, "after").output).toEqual({ got: { ref: executionId, n: 1 } });
      // One wait, one resume: the first attempt parked, the second (the resume) completed.
      expect(await attemptsOf(executionId, "ask")).toEqual(["waiting", "completed"]);
      expect(stepOf(done, "ask").attempts).toBe(2);
      expect(runs.get(executionId)).toBe(2);
    }
    expect(Date.now() - started).toBeLessThan(20_000);
    // The catch-ups' ordered consumers are gone once they have read up to the present.
    const jsm = await jetstreamManager(mesh.nc);
    const consumers = await waitFor(async () => {
      const names = (await jsm.consumers.list(mesh.names.streams.events).next()).map((c) => c.name);
      return names.length === 1 ? names : false;
    }, { message: "only engine_events left on FM_EVENTS" });
    expect(consumers).toEqual([mesh.names.consumers.events]);
  });

  it("an event stored before the attempt was dispatched does not resume it", async () => {
    await withWorker();
    const js = jetstream(mesh.nc);
    const jsm = await jetstreamManager(mesh.nc);
    const { seq } = await js.publish(mesh.names.subjects.event("stock.ready"), encode({ data: { ref: "old-1", n: 0 } }));
    const stored = await jsm.streams.getMessage(mesh.names.streams.events, { seq });
    // The live consumer is done with it (it matched nothing: nobody waited yet)...
    await waitFor(
      async () => {
        const info = await jsm.consumers.info(mesh.names.streams.events, mesh.names.consumers.events);
        return info.delivered.stream_seq >= seq && info.num_ack_pending === 0 && info.num_pending === 0;
      },
      { message: "engine_events to have processed the old event" },
    );
    // ...and it is older than the margin by the time the step is dispatched.
    await waitFor(() => Date.now() > stored!.time.getTime() + SKEW_MS + 50, { message: "the skew margin to pass" });

    await mesh.putFlow({
      id: "stale-event",
      // Waits for ref old-1 (the stale event's); emits a newer event its filter rejects, so the catch-up does read the stream.
      steps: [{ id: "hold", handler: "replies-first", input: { event: "stock.ready", emit: [{ ref: "new-1", n: 1 }], waitFor: "old-1", timeoutMs: 2000 } }],
    });
    const { executionId } = await mesh.api.start("stale-event", { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 15_000);
    expect(stepOf(done, "hold").output).toEqual({ reason: "timeout", payload: null, event: null });
    expect(await attemptsOf(executionId, "hold")).toEqual(["waiting", "completed"]);
  });

  it("the wait's filter decides: rejected events do not resume it, the first accepted one does", async () => {
    await withWorker();
    await mesh.putFlow({
      id: "filtered",
      steps: [{ id: "hold", handler: "replies-first", input: { event: "quote.ready", emit: [{ ref: "someone-else", n: 1 }], timeoutMs: 2000 } }],
    });
    await mesh.putFlow({
      id: "filtered-first",
      steps: [
        {
          id: "hold",
          handler: "replies-first",
          input: { event: "quote.ready", emit: [{ ref: "someone-else", n: 1 }, { ref: "self", n: 2 }, { ref: "self", n: 3 }], timeoutMs: 30_000 },
        },
      ],
    });
    const rejected = (await mesh.api.start("filtered", { input: {} })).executionId;
    const accepted = (await mesh.api.start("filtered-first", { input: {} })).executionId;

    const first = await mesh.waitForStatus(accepted, "completed", 10_000);
    expect(stepOf(first, "hold").output).toMatchObject({ reason: "event", payload: { ref: accepted, n: 2 } });
    expect(await attemptsOf(accepted, "hold")).toEqual(["waiting", "completed"]);

    const timedOut = await mesh.waitForStatus(rejected, "completed", 15_000);
    expect(stepOf(timedOut, "hold").output).toEqual({ reason: "timeout", payload: null, event: null });
    expect(await attemptsOf(rejected, "hold")).toEqual(["waiting", "completed"]);
  });

  it("one event resumes a step once: a next wait of the step right after is not resumed by it again", async () => {
    await withWorker();
    await mesh.putFlow({ id: "twice", steps: [{ id: "loop", handler: "waits-twice", input: { event: "tick.ready" } }] });
    const { executionId } = await mesh.api.start("twice", { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 15_000);
    // The second wait ended by its timer, not by the event that ended the first one.
    expect(stepOf(done, "loop").output).toEqual({ reason: "timeout", payload: null });
    expect(await attemptsOf(executionId, "loop")).toEqual(["waiting", "waiting", "completed"]);
    expect(runs.get(executionId)).toBe(3);
  });

  it("a catch-up racing the live event consumer for the same wait resumes it once", async () => {
    await mesh.putFlow({ id: "race", steps: [{ id: "hold", handler: "wait", input: { event: "race.go", filter: "data.ref = 'r-1'", timeoutMs: 30_000 } }] });
    const { executionId } = await mesh.api.start("race", { input: {} });
    const parked = await mesh.waitForStatus(executionId, "waiting");
    const token = stepOf(parked, "hold").wait!.resumeToken;
    const js = jetstream(mesh.nc);
    const jsm = await jetstreamManager(mesh.nc);
    const db = mesh.engine.db;
    const log = createLogger({ name: "test", level: "silent" });
    // A second engine's catch-up, on the same database, for the wait the live consumer is about to resume.
    const relay = createRelay({ db, nc: mesh.nc, log });
    const catchUp = createEventCatchUp({
      db,
      registry: createFlowRegistry(db),
      subjects: mesh.names.subjects,
      relay,
      log,
      maxMessageBytes: 1024 * 1024,
      js,
      jsm,
      stream: mesh.names.streams.events,
      clockSkewMs: SKEW_MS,
    });
    const wait = { token, executionId, stepId: "hold", attempt: 1, eventName: "race.go", eventFilter: "data.ref = 'r-1'" };

    await js.publish(mesh.names.subjects.event("race.go"), encode({ data: { ref: "r-1", n: 7 } }));
    const raced = await Promise.all([catchUp([wait]), catchUp([wait]), catchUp([wait])]).finally(() => relay.close());
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.output).toEqual({ ref: "r-1", n: 7 });
    // Whoever won (the live consumer or one of the catch-ups), the step was resumed once.
    expect(raced.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1);
    expect(await attemptsOf(executionId, "hold")).toEqual(["waiting", "completed"]);
    expect(stepOf(done, "hold").attempts).toBe(2);
    // Once it is resumed, a late catch-up for the same wait finds the event and resumes nothing.
    expect(await catchUp([wait])).toBe(0);
    expect(await attemptsOf(executionId, "hold")).toEqual(["waiting", "completed"]);
  });

  it("a catch-up that fails says which wait it left parked, and the wait still resumes on a new event", async () => {
    await mesh.putFlow({ id: "catch-up-fails", steps: [{ id: "hold", handler: "wait", input: { event: "fail.go", filter: "data.ref = 'f-1'", timeoutMs: 30_000 } }] });
    const { executionId } = await mesh.api.start("catch-up-fails", { input: {} });
    const parked = await mesh.waitForStatus(executionId, "waiting");
    const token = stepOf(parked, "hold").wait!.resumeToken;
    const lines: string[] = [];
    const db = mesh.engine.db;
    // The engine's own catch-up right after the commit found nothing and recorded that it ran (the sweep never claimed it).
    const mark = await waitFor(async () => {
      const { rows } = await db.query<{ caught_up_at: Date | null; catch_up_tries: number }>("SELECT caught_up_at, catch_up_tries FROM wait_tokens WHERE token = $1", [token]);
      return rows[0]?.caught_up_at ? rows[0] : undefined;
    }, { message: "the wait to be marked caught up" });
    expect(mark.catch_up_tries).toBe(0);
    const catchUp = createEventCatchUp({
      db,
      registry: createFlowRegistry(db),
      subjects: mesh.names.subjects,
      relay: { afterCommit: () => undefined },
      log: createLogger({ name: "test", level: "warn", destination: new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(chunk.toString()), done()) }) }),
      maxMessageBytes: 1024 * 1024,
      js: jetstream(mesh.nc),
      jsm: await jetstreamManager(mesh.nc),
      // No such stream: reading it fails.
      stream: `${mesh.names.streams.events}_GONE`,
    });
    await expect(catchUp([{ token, executionId, stepId: "hold", attempt: 1, eventName: "fail.go", eventFilter: "data.ref = 'f-1'" }])).resolves.toBe(0);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toEqual([expect.objectContaining({ executionId, stepId: "hold", token, event: "fail.go", msg: expect.stringMatching(/catch-up failed/) as unknown })]);
    const { rows } = await db.query("SELECT 1 FROM wait_tokens WHERE token = $1", [token]);
    expect(rows).toHaveLength(1);
    await jetstream(mesh.nc).publish(mesh.names.subjects.event("fail.go"), encode({ data: { ref: "f-1" } }));
    const done = await mesh.waitForStatus(executionId, "completed");
    expect(done.output).toEqual({ ref: "f-1" });
  });

  it("a catch-up reads at most its cap of events, says so, and leaves the wait parked", async () => {
    await mesh.putFlow({ id: "capped", steps: [{ id: "hold", handler: "wait", input: { event: "cap.go", filter: "data.ref = 'c-1'", timeoutMs: 30_000 } }] });
    const { executionId } = await mesh.api.start("capped", { input: {} });
    const parked = await mesh.waitForStatus(executionId, "waiting");
    const token = stepOf(parked, "hold").wait!.resumeToken;
    const js = jetstream(mesh.nc);
    // Three events since its dispatch, none of which its filter accepts: a catch-up capped at two reads two.
    for (let n = 0; n < 3; n++) await js.publish(mesh.names.subjects.event("cap.go"), encode({ data: { ref: "other", n } }));
    const lines: string[] = [];
    const db = mesh.engine.db;
    const env = {
      db,
      registry: createFlowRegistry(db),
      subjects: mesh.names.subjects,
      relay: { afterCommit: () => undefined },
      log: createLogger({ name: "test", level: "warn", destination: new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(chunk.toString()), done()) }) }),
      maxMessageBytes: 1024 * 1024,
      js,
      jsm: await jetstreamManager(mesh.nc),
      stream: mesh.names.streams.events,
    };
    const wait = { token, executionId, stepId: "hold", attempt: 1, eventName: "cap.go", eventFilter: "data.ref = 'c-1'" };
    await expect(createEventCatchUp({ ...env, maxEvents: 2 })([wait])).resolves.toBe(0);
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ event: "cap.go", scanned: 2, pending: 1, msg: expect.stringMatching(/capped/) as unknown }),
    ]);
    expect((await db.query("SELECT 1 FROM wait_tokens WHERE token = $1", [token])).rows).toHaveLength(1);
    expect((await mesh.api.get(executionId)).status).toBe("waiting");
  });
});
