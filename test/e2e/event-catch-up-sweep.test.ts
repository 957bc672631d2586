/**
 * The catch-up of events that came while a step ran is crash-safe: a wait whose engine did not
 * catch it up (it stopped between the commit and the catch-up, or the catch-up failed) is
 * caught up by the wait timer's sweep of any engine, once its grace has passed — against a real
 * nats-server and PostgreSQL. The engines here run with the post-commit catch-up turned off
 * (`eventCatchUpOnCommit: false`): exactly what an engine that dies right after each commit
 * leaves behind. The handler emits its reply and lets the live `engine_events` consumer finish
 * with it before it returns ctx.wait, so that consumer always misses it:
 *  - a second engine started after the first is closed resumes the wait by that event, well
 *    before its timeout, once;
 *  - the same engine's sweep does it after the grace; a wait its catch-up finds nothing for is
 *    marked caught up and not swept again;
 *  - a sweep whose catch-up fails logs it, leaves the wait not caught up, and retries it only
 *    after a backoff that doubles — never in a loop — until one succeeds.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, type ExecutionView } from "@flowmonkey/shared";
import { createEngine, type Engine } from "@flowmonkey/engine";
import { defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { createFlowRegistry } from "../../engine/src/flows/registry.js";
import { createRelay } from "../../engine/src/outbox/relay.js";
import { createEventCatchUp } from "../../engine/src/waits/event-catch-up.js";
import { startWaitTimer } from "../../engine/src/waits/wait-timer.js";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

const SKEW_MS = 250;
/** The wait's own timeout: being resumed well before it proves the event did it. */
const WAIT_TIMEOUT_MS = 60_000;

/** Runs of `replies-early` per execution. */
const runs = new Map<string, number>();

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"], concurrency: 2 }],
  // Engine A: records waits and never catches them up (no post-commit catch-up; its sweep's grace is never reached here).
  engine: { waitTimerIntervalMs: 200, eventCatchUpClockSkewMs: SKEW_MS, eventCatchUpOnCommit: false, eventCatchUpGraceMs: 3_600_000 },
}));

/** Resolves once `engine_events` has received and acknowledged every event stored on `subject` so far. */
async function liveConsumerPassed(subject: string): Promise<void> {
  const jsm = await jetstreamManager(mesh.nc);
  const last = await jsm.streams.getMessage(mesh.names.streams.events, { last_by_subj: subject });
  if (!last) throw new Error(`no event on ${subject}`);
  await waitFor(
    async () => {
      const info = await jsm.consumers.info(mesh.names.streams.events, mesh.names.consumers.events);
      return info.delivered.stream_seq >= last.seq && info.ack_floor.stream_seq >= last.seq && info.num_ack_pending === 0;
    },
    { message: `engine_events to have processed event ${last.seq} on ${subject}` },
  );
}

/**
 * Emits its reply (`data.ref` = its execution id) and waits until the live consumer is done
 * with it — matched against no wait row, as none exists yet — then returns a wait for it.
 * Resumed, returns why. `ref` other than "self": waits for an event nobody sends.
 */
const repliesEarly = defineHandler({
  type: "replies-early",
  version: "1",
  input: z.object({ event: z.string(), waitFor: z.string().default("self") }),
  async execute(ctx) {
    const executionId = ctx.task.executionId;
    runs.set(executionId, (runs.get(executionId) ?? 0) + 1);
    if (ctx.resume) return { reason: ctx.resume.reason, payload: ctx.resume.payload ?? null };
    await ctx.events.emit(ctx.input.event, { ref: executionId });
    // The worker emits it as its region's (us-east-1, the mesh's default) event.
    await liveConsumerPassed(mesh.names.subjects.regionEvent("us-east-1", ctx.input.event));
    const ref = ctx.input.waitFor === "self" ? executionId : ctx.input.waitFor;
    return ctx.wait({ resumeOn: { event: ctx.input.event, filter: `data.ref = '${ref}'` }, timeoutMs: WAIT_TIMEOUT_MS });
  },
});

let worker: Promise<unknown> | undefined;
const withWorker = () => (worker ??= mesh.startWorker({ handlers: [repliesEarly], concurrency: 8 }));

const stepOf = (view: ExecutionView, stepId: string) => view.steps.find((s) => s.stepId === stepId)!;

interface CatchUpRow {
  caught_up_at: Date | null;
  catch_up_tries: number;
  /** catch_up_not_before − now(), in ms. */
  backoff_ms: number | null;
}

async function catchUpRowOf(engine: Engine, executionId: string): Promise<CatchUpRow | undefined> {
  const { rows } = await engine.db.query<CatchUpRow>(
    `SELECT caught_up_at, catch_up_tries, (EXTRACT(EPOCH FROM catch_up_not_before - now()) * 1000)::float8 AS backoff_ms
       FROM wait_tokens WHERE execution_id = $1`,
    [executionId],
  );
  return rows[0];
}

async function attemptsOf(engine: Engine, executionId: string, stepId: string): Promise<string[]> {
  const { rows } = await engine.db.query<{ status: string }>("SELECT status FROM tasks WHERE execution_id = $1 AND step_id = $2 ORDER BY attempt", [executionId, stepId]);
  return rows.map((r) => r.status);
}

/** Another engine on the mesh's prefix and database, closed by `use`'s end. */
async function withEngine<T>(options: Partial<Parameters<typeof createEngine>[0]>, use: (engine: Engine) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: nats.url });
  const engine = createEngine({
    nc,
    log: createLogger({ name: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    prefix: mesh.prefix,
    databaseUrl: pg.url,
    heartbeatTimeoutMs: 10_000,
    waitTimerIntervalMs: 200,
    eventCatchUpClockSkewMs: SKEW_MS,
    ...options,
  });
  try {
    await engine.start();
    return await use(engine);
  } finally {
    await engine.close();
    await nc.close();
  }
}

/** Starts `count` executions of a flow of one `replies-early` step and waits until all are parked, missed events and all. */
async function parkMissing(engine: Engine, flowId: string, input: { event: string; waitFor?: string }, count = 1): Promise<string[]> {
  await withWorker();
  await mesh.putFlow({ id: flowId, steps: [{ id: "ask", handler: "replies-early", input }] });
  const ids = await Promise.all(Array.from({ length: count }, async () => (await mesh.api.start(flowId, { input: {} })).executionId));
  for (const executionId of ids) {
    await mesh.waitForStatus(executionId, "waiting");
    // The reply came and went: nothing resumed the step, and its wait is recorded as not caught up.
    expect(await catchUpRowOf(engine, executionId)).toEqual({ caught_up_at: null, catch_up_tries: 0, backoff_ms: null });
  }
  return ids;
}

describe("event waits their engine did not catch up", () => {
  it("are caught up by another engine once the first is gone: resumed by the early event, once, long before their timeout", async () => {
    const ids = await parkMissing(mesh.engine, "crashed-before-catch-up", { event: "reply.crash" }, 3);
    // Engine A "dies" between the commit and the catch-up it never ran.
    await mesh.engine.close();

    const started = Date.now();
    await withEngine({ eventCatchUpGraceMs: 1000 }, async (b) => {
      for (const executionId of ids) {
        const done = await mesh.waitForStatus(executionId, ["completed", "failed"], 15_000);
        expect(done.status).toBe("completed");
        expect(stepOf(done, "ask").output).toEqual({ reason: "event", payload: { ref: executionId } });
        expect(await attemptsOf(b, executionId, "ask")).toEqual(["waiting", "completed"]);
        expect(runs.get(executionId)).toBe(2);
        expect(await catchUpRowOf(b, executionId)).toBeUndefined();
      }
    });
    expect(Date.now() - started).toBeLessThan(WAIT_TIMEOUT_MS / 3);
  });

  it("are caught up by the same engine's sweep after the grace; a wait nothing matches is marked caught up and left alone", async () => {
    await withEngine({ eventCatchUpOnCommit: false, eventCatchUpGraceMs: 1500 }, async (engine) => {
      const [matched] = await parkMissing(engine, "swept-by-itself", { event: "reply.self" });
      const [unmatched] = await parkMissing(engine, "swept-nothing-found", { event: "reply.none", waitFor: "nobody" });
      const done = await mesh.waitForStatus(matched!, "completed", 15_000);
      expect(stepOf(done, "ask").output).toEqual({ reason: "event", payload: { ref: matched } });
      expect(await attemptsOf(engine, matched!, "ask")).toEqual(["waiting", "completed"]);

      const swept = await waitFor(async () => {
        const row = await catchUpRowOf(engine, unmatched!);
        return row?.caught_up_at ? row : undefined;
      }, { message: "the unmatched wait to be marked caught up" });
      expect(swept.catch_up_tries).toBe(1);
      // Done is done: further ticks of the sweep (every 200 ms) do not claim it again.
      const doneAt = Date.now();
      await waitFor(() => Date.now() - doneAt > 1500, { intervalMs: 100, message: "several sweep ticks" });
      expect(await catchUpRowOf(engine, unmatched!)).toMatchObject({ catch_up_tries: 1 });
      expect((await mesh.api.get(unmatched!)).status).toBe("waiting");
      await mesh.api.cancel(unmatched!);
    });
  });

  it("a sweep whose catch-up fails logs it, retries after a doubling backoff, never in a loop, and a later one resumes the wait", async () => {
    await withEngine({ eventCatchUpOnCommit: false, eventCatchUpGraceMs: 3_600_000 }, async (engine) => {
      const [executionId] = await parkMissing(engine, "catch-up-keeps-failing", { event: "reply.flaky" });
      const log = createLogger({ name: "test", level: "silent" });
      const relay = createRelay({ db: engine.db, nc: mesh.nc, log });
      const lines: string[] = [];
      const env = {
        db: engine.db,
        registry: createFlowRegistry(engine.db),
        subjects: mesh.names.subjects,
        relay,
        log,
        maxMessageBytes: 1024 * 1024,
        js: jetstream(mesh.nc),
        jsm: await jetstreamManager(mesh.nc),
        stream: mesh.names.streams.events,
        clockSkewMs: SKEW_MS,
      };
      const failing = createEventCatchUp({
        ...env,
        log: createLogger({ name: "test", level: "warn", destination: new Writable({ write: (chunk: Buffer, _enc, cb) => void (lines.push(chunk.toString()), cb()) }) }),
        // No such stream: reading it fails, as with NATS unreachable.
        stream: `${mesh.names.streams.events}_GONE`,
      });
      const graceMs = 1000;
      // Sweeps driven by hand (their own loop never ticks): first one whose catch-up fails, then a working one.
      const failingSweep = startWaitTimer({ ...env, intervalMs: 3_600_000, catchUp: { run: failing, graceMs } });
      const workingSweep = startWaitTimer({ ...env, intervalMs: 3_600_000, catchUp: { run: createEventCatchUp(env), graceMs } });
      try {
        await waitFor(async () => (await failingSweep.catchUpStale(), lines.length > 0), { message: "the grace to pass and the catch-up to fail" });
        expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
          expect.objectContaining({ executionId, stepId: "ask", event: "reply.flaky", msg: expect.stringMatching(/catch-up failed/) as unknown }),
        ]);
        const first = (await catchUpRowOf(engine, executionId!))!;
        expect(first).toMatchObject({ caught_up_at: null, catch_up_tries: 1 });
        expect(first.backoff_ms).toBeGreaterThan(0);
        expect(first.backoff_ms).toBeLessThanOrEqual(graceMs);

        // Inside the backoff, sweeping again (and again) claims nothing: no hot loop.
        for (let i = 0; i < 5; i++) expect(await failingSweep.catchUpStale()).toBe(0);
        expect(lines).toHaveLength(1);
        expect(await catchUpRowOf(engine, executionId!)).toMatchObject({ catch_up_tries: 1 });

        // Once it has passed, the next sweep tries again, and backs off twice as long.
        await waitFor(async () => (await failingSweep.catchUpStale(), lines.length === 2), { message: "the second try after the backoff" });
        const second = (await catchUpRowOf(engine, executionId!))!;
        expect(second).toMatchObject({ caught_up_at: null, catch_up_tries: 2 });
        expect(second.backoff_ms).toBeGreaterThan(graceMs);
        expect(second.backoff_ms).toBeLessThanOrEqual(2 * graceMs);
        expect((await mesh.api.get(executionId!)).status).toBe("waiting");

        // A sweep that can read FM_EVENTS resumes it by the early event once its backoff is over.
        const resumed = await waitFor(async () => (await workingSweep.catchUpStale()) || undefined, { message: "a working sweep to resume the wait" });
        expect(resumed).toBe(1);
        const done = await mesh.waitForStatus(executionId!, "completed", 15_000);
        expect(stepOf(done, "ask").output).toEqual({ reason: "event", payload: { ref: executionId } });
        expect(await attemptsOf(engine, executionId!, "ask")).toEqual(["waiting", "completed"]);
        expect(lines).toHaveLength(2);
      } finally {
        await failingSweep.stop();
        await workingSweep.stop();
        await relay.close();
      }
    });
  });
});
