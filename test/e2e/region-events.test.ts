/**
 * A region's events resume only the waits parked in that region, against a real nats-server
 * and PostgreSQL. A worker emits `fm.events.~<region>.<name>` (the shipped permissions let it
 * publish nothing else under fm.events); a trusted publisher (the gateway, an operator)
 * `fm.events.<name>`, which may resume any wait:
 *  - live: an event a worker in r1 emits resumes the step waiting in r1 and not the one in r2;
 *    a trusted event then resumes the r2 step; the resume says which region's event it was;
 *  - caught up (the event stored before the wait was recorded): another region's event does not
 *    resume the wait, its own region's and a trusted one do.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { encode, type ExecutionView } from "@flowmonkey/shared";
import { defineHandler } from "@flowmonkey/worker";
import { z } from "zod";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();

/** Waits for an event; resumed, says by what. */
const parks = defineHandler({
  type: "parks",
  version: "1",
  input: z.object({ event: z.string(), timeoutMs: z.number().int() }),
  async execute(ctx) {
    if (ctx.resume) return { reason: ctx.resume.reason, event: ctx.resume.event ?? null };
    return ctx.wait({ resumeOn: { event: ctx.input.event }, timeoutMs: ctx.input.timeoutMs });
  },
});

/** Emits an event as its worker does (under the worker's region). */
const opens = defineHandler({
  type: "opens",
  version: "1",
  input: z.object({ event: z.string() }),
  async execute(ctx) {
    await ctx.events.emit(ctx.input.event, { by: ctx.task.executionId });
    return { emitted: ctx.input.event };
  },
});

/**
 * Has `subject` published (as anyone with the rights could) before it returns its wait, so the
 * wait is resumed, if at all, by the engine's catch-up.
 */
const publishesThenParks = defineHandler({
  type: "publishes-then-parks",
  version: "1",
  input: z.object({ subject: z.string(), event: z.string() }),
  async execute(ctx) {
    if (ctx.resume) return { reason: ctx.resume.reason, event: ctx.resume.event ?? null };
    await jetstream(mesh.nc).publish(ctx.input.subject, encode({ data: { forged: true } }));
    return ctx.wait({ resumeOn: { event: ctx.input.event }, timeoutMs: 1500 });
  },
});

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"], concurrency: 1 }],
  engine: { waitTimerIntervalMs: 200 },
}));

let started: Promise<unknown> | undefined;
const withWorkers = () =>
  (started ??= Promise.all(["r1", "r2"].map((region) => mesh.startWorker({ region, handlers: [parks, opens, publishesThenParks], concurrency: 4 }))));

const stepOf = (view: ExecutionView) => view.steps.find((s) => s.stepId === "s")!;

async function waitingStep(executionId: string): Promise<void> {
  await waitFor(async () => stepOf(await mesh.api.get(executionId)).status === "waiting" || undefined, { message: `${executionId} waiting` });
}

describe("events from a region's workers", () => {
  it("resume the waits parked in their region only; a trusted event resumes any", async () => {
    await withWorkers();
    for (const region of ["r1", "r2"]) {
      await mesh.putFlow({ id: `park-${region}`, steps: [{ id: "s", handler: "parks", region, input: { event: "door.open", timeoutMs: 60_000 } }] });
    }
    await mesh.putFlow({ id: "open-r1", steps: [{ id: "s", handler: "opens", region: "r1", input: { event: "door.open" } }] });
    const inR1 = (await mesh.api.start("park-r1", { input: {} })).executionId;
    const inR2 = (await mesh.api.start("park-r2", { input: {} })).executionId;
    await waitingStep(inR1);
    await waitingStep(inR2);

    const opener = (await mesh.api.start("open-r1", { input: {} })).executionId;
    await mesh.waitForStatus(opener, "completed");
    const r1 = await mesh.waitForStatus(inR1, "completed", 10_000);
    expect(stepOf(r1).output).toEqual({ reason: "event", event: expect.objectContaining({ name: "door.open", region: "r1", executionId: opener }) as unknown });
    // The engine has taken that event (its consumer acked everything stored): r2's step still waits.
    const jsm = await jetstreamManager(mesh.nc);
    await waitFor(
      async () => {
        const info = await jsm.consumers.info(mesh.names.streams.events, mesh.names.consumers.events);
        return (info.num_pending === 0 && info.num_ack_pending === 0) || undefined;
      },
      { message: "the engine's event consumer took every event" },
    );
    expect(stepOf(await mesh.api.get(inR2)).status).toBe("waiting");

    await jetstream(mesh.nc).publish(mesh.names.subjects.event("door.open"), encode({ data: { by: "operator" } }));
    const r2 = await mesh.waitForStatus(inR2, "completed", 10_000);
    expect(stepOf(r2).output).toEqual({ reason: "event", event: { name: "door.open" } });
  });

  it.each([
    ["another region's event does not resume it", "r2", "timeout", undefined],
    ["its own region's event resumes it", "r1", "event", "r1"],
    ["a trusted event resumes it", undefined, "event", undefined],
  ] as const)("caught up: %s", async (_case, from, reason, region) => {
    await withWorkers();
    const event = `gate.${from ?? "trusted"}`;
    const subject = from ? mesh.names.subjects.regionEvent(from, event) : mesh.names.subjects.event(event);
    const flowId = `catch-${from ?? "trusted"}`;
    await mesh.putFlow({ id: flowId, steps: [{ id: "s", handler: "publishes-then-parks", region: "r1", input: { subject, event } }] });
    const { executionId } = await mesh.api.start(flowId, { input: {} });
    const done = await mesh.waitForStatus(executionId, "completed", 10_000);
    expect(stepOf(done).output).toEqual(
      reason === "timeout" ? { reason, event: null } : { reason, event: expect.objectContaining({ name: event, ...(region ? { region } : {}) }) as unknown },
    );
    if (reason === "event" && !region) expect((stepOf(done).output as { event: { region?: string } }).event.region).toBeUndefined();
  });
});
