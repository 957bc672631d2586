/**
 * Schedules: starts on a timer. Two engines on one store fire a 1 s schedule — N ticks make N
 * executions, none twice; overlap and missed-tick policies; flow-file schedules; bad input.
 * Real nats-server and PostgreSQL.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, type Engine } from "@flowmonkey/engine";
import { createLogger, type FmError } from "@flowmonkey/shared";
import { startMesh, type TestMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pgdb = useTestDatabase();
let mesh: TestMesh;
let second: Engine;
let db: pg.Client;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pgdb.url, engine: { scheduleTickMs: 100 } });
  // A second engine on the same prefix and store: ticks must still start once each.
  second = createEngine({ nc: mesh.nc, log: createLogger({ name: "test", level: "silent" }), prefix: mesh.prefix, databaseUrl: pgdb.url, heartbeatTimeoutMs: 10_000, scheduleTickMs: 100 });
  await second.start();
  await mesh.putFlow({ id: "hello", steps: [{ id: "say", handler: "echo", input: { text: "{% input.text %}" } }] });
  await mesh.putFlow({ id: "slow", steps: [{ id: "nap", handler: "delay", input: { ms: 2500 } }] });
  db = new pg.Client({ connectionString: pgdb.url });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await second?.close();
  await mesh?.close();
});

const startedBy = async (scheduleId: string) =>
  (await db.query<{ id: string; start_key: string }>("SELECT id, start_key FROM executions WHERE labels->>'schedule' = $1 ORDER BY created_at", [scheduleId])).rows;

const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err: FmError) => err.code);

describe("schedules", () => {
  it("two engines: every tick starts exactly one execution", async () => {
    const put = await mesh.api.putSchedule({ scheduleId: "every-second", flowId: "hello", everyMs: 1000, input: { text: "tick" }, overlap: "allow" });
    expect(put).toMatchObject({ created: true, source: "api", paused: false, everyMs: 1000 });
    await waitFor(async () => ((await startedBy("every-second")).length >= 4 ? true : undefined), { timeoutMs: 15_000, message: "four ticks" });
    await mesh.api.pauseSchedule("every-second");
    const view = await mesh.api.getSchedule("every-second");
    const started = await startedBy("every-second");
    // One execution per tick, each under its own tick's key.
    expect(started.length).toBe(view.ticks);
    expect(new Set(started.map((e) => e.start_key)).size).toBe(started.length);
    expect(started.every((e) => /^schedule:every-second:\d{4}-/.test(e.start_key))).toBe(true);
    expect(view.lastTick).toMatchObject({ action: "started" });
    await mesh.waitForStatus(started.at(-1)!.id, "completed");
    // Paused: no more ticks.
    const ticks = view.ticks;
    await new Promise((r) => setTimeout(r, 1500));
    expect((await mesh.api.getSchedule("every-second")).ticks).toBe(ticks);
    expect((await mesh.api.resumeSchedule("every-second")).nextFireAt).toBeDefined();
    await mesh.api.deleteSchedule("every-second");
    await expect(refusal(mesh.api.getSchedule("every-second"))).resolves.toBe("SCHEDULE_NOT_FOUND");
  });

  it("overlap skip: a tick while the previous execution runs starts nothing and says why", async () => {
    await mesh.api.putSchedule({ scheduleId: "slow-one", flowId: "slow", everyMs: 1000, overlap: "skip" });
    const skipped = await waitFor(async () => {
      const v = await mesh.api.getSchedule("slow-one");
      return v.lastTick?.action === "skipped" ? v.lastTick : undefined;
    }, { timeoutMs: 15_000, message: "a skipped tick" });
    expect(skipped.note).toMatch(/still running \(overlap: skip\)/);
    await mesh.api.deleteSchedule("slow-one");
    // Never two at once.
    const started = await startedBy("slow-one");
    expect(started.length).toBeGreaterThanOrEqual(1);
  });

  it.each([
    ["skip", "missed", 0],
    ["one", "started", 1],
  ] as const)("ticks missed while no engine ran, missed: %s", async (missed, action, executions) => {
    const scheduleId = `late-${missed}`;
    await mesh.api.putSchedule({ scheduleId, flowId: "hello", everyMs: 1000, missed, paused: true });
    // As if no engine had run for ten seconds: the schedule was due ten ticks ago.
    await db.query("UPDATE schedules SET paused = false, anchor_at = now() - interval '10.5 seconds', next_fire_at = now() - interval '10.5 seconds' WHERE schedule_id = $1", [scheduleId]);
    const first = await waitFor(async () => (await mesh.api.getSchedule(scheduleId)).lastTick, { message: "the late tick handled" });
    await mesh.api.pauseSchedule(scheduleId);
    expect(first.action).toBe(action);
    expect(first.missedTicks).toBeGreaterThanOrEqual(9);
    const started = (await startedBy(scheduleId)).filter((e) => e.start_key === `schedule:${scheduleId}:${first.tickAt}`);
    expect(started.length).toBe(executions);
  });

  it("a flow file's schedules are the flow's: pushed with it, gone when it drops them", async () => {
    await mesh.putFlow({ id: "nightly", steps: [{ id: "say", handler: "echo" }], schedules: [{ id: "night", cron: "0 3 * * *", timezone: "Europe/Berlin" }] });
    const [night] = (await mesh.api.listSchedules("nightly")).schedules;
    expect(night).toMatchObject({ scheduleId: "nightly.night", source: "flow", cron: "0 3 * * *", timezone: "Europe/Berlin", overlap: "skip", missed: "one" });
    // 03:00 in Berlin is 01:00 or 02:00 UTC.
    expect(new Date(night!.nextFireAt!).getUTCHours()).toBeGreaterThanOrEqual(1);
    expect(new Date(night!.nextFireAt!).getUTCHours()).toBeLessThanOrEqual(2);
    await mesh.putFlow({ id: "nightly", steps: [{ id: "say", handler: "echo" }] });
    expect((await mesh.api.listSchedules("nightly")).schedules).toEqual([]);
  });

  it("a six-field cron fires every second", async () => {
    await mesh.api.putSchedule({ scheduleId: "cron-seconds", flowId: "hello", cron: "* * * * * *", input: { text: "cron" } });
    await waitFor(async () => ((await startedBy("cron-seconds")).length >= 2 ? true : undefined), { timeoutMs: 10_000, message: "two cron ticks" });
    await mesh.api.deleteSchedule("cron-seconds");
    const keys = (await startedBy("cron-seconds")).map((e) => e.start_key);
    // Ticks on whole seconds, one execution each.
    expect(keys.every((k) => /:\d{2}\.000Z$/.test(k))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("refuses what it cannot run, naming why", async () => {
    await expect(refusal(mesh.api.putSchedule({ scheduleId: "x", flowId: "hello", cron: "61 * * * *" }))).resolves.toBe("INVALID_INPUT");
    await expect(refusal(mesh.api.putSchedule({ scheduleId: "x", flowId: "hello", cron: "* * * * *", everyMs: 1000 }))).resolves.toBe("INVALID_INPUT");
    await expect(refusal(mesh.api.putSchedule({ scheduleId: "x", flowId: "hello", everyMs: 10 }))).resolves.toBe("INVALID_INPUT");
    await expect(refusal(mesh.api.putSchedule({ scheduleId: "x", flowId: "hello", cron: "* * * * *", timezone: "Mars/Base" }))).resolves.toBe("INVALID_INPUT");
    await expect(refusal(mesh.api.putSchedule({ scheduleId: "x", flowId: "nosuch", everyMs: 1000 }))).resolves.toBe("FLOW_NOT_FOUND");
    await expect(refusal(mesh.putFlow({ id: "bad", steps: [{ id: "s", handler: "echo" }], schedules: [{ id: "a", cron: "nope" }] }))).resolves.toMatch(/INVALID/);
  });
});
