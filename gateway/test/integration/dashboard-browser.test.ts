/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
 * against a real mesh (nats-server from PATH, PostgreSQL, engine, worker and gateway in this
 * process). A flow with a `delay` step is started from the dashboard's form; its step's
 * progress bar is read as it moves (live `fm.progress` over SSE) until it reaches 100 % and the
 * status says completed. The page is saved as a screenshot (FM_DASHBOARD_SCREENSHOT, default in
 * the temp dir; docs/dashboard.png is one of these).
 *
 * Skipped, with the reason, when no Chromium is installed (`apt-get install chromium`; .ci/run
 * installs it).
 */
import { existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { createLogger } from "@flowmonkey/shared";
import { createGateway, hashToken, type Gateway } from "@flowmonkey/gateway";
import { defineHandler } from "@flowmonkey/worker";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { waitFor } from "../../../test/support/wait.js";

const CHROMIUM = process.env["FM_CHROMIUM"] ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[dashboard-browser] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set FM_CHROMIUM)`);

/** Opened by the map test once the page shows the first two items done. */
let openGate: () => void = () => undefined;
const gate = new Promise<void>((resolve) => (openGate = resolve));
const gated = defineHandler({
  type: "gated",
  input: z.object({ index: z.number() }),
  async execute(ctx) {
    if (ctx.input.index >= 2) await gate;
    return { index: ctx.input.index };
  },
});

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let gateway: Gateway;
let browser: Browser;

beforeAll(async () => {
  if (!haveChromium) return;
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [{ handlers: ["delay", "fail", "wait"] }] });
  await mesh.putFlow({ id: "approval", steps: [{ id: "approve", handler: "wait", input: { resumeToken: "{% 'ok-' & execution.id %}" } }] });
  await mesh.putFlow({ id: "nap", name: "A nap", steps: [{ id: "sleep", handler: "delay", input: { ms: 3000 } }] });
  await mesh.putFlow({
    id: "pair",
    example: { note: "two naps side by side" },
    steps: [
      { id: "left", handler: "delay", input: { ms: 1500 } },
      { id: "right", handler: "delay", input: { ms: 1500 }, dependsOn: [] },
      { id: "after", handler: "delay", input: { ms: 200 }, dependsOn: ["left", "right"] },
    ],
  });
  await mesh.putFlow({ id: "long", steps: [{ id: "sleep", handler: "delay", input: { ms: 8000 } }] });
  // Items 0 and 1 finish at once; the rest wait for the test to open the gate: the page can be
  // read at 2 of 6 however slowly it loads.
  await mesh.startWorker({ handlers: [gated] });
  await mesh.putFlow({ id: "fan", steps: [{ id: "each", handler: "gated", map: { items: "{% [1..6] %}", concurrency: 2 }, input: { index: "{% index %}" } }] });
  // Retried once, then dead-lettered (attempts_exhausted): something for the dead-letter panel.
  await mesh.putFlow({
    id: "doomed",
    steps: [{ id: "call", handler: "fail", input: { code: "DOWNSTREAM_DOWN", message: "the payment service is down", retryable: true }, retry: { maxAttempts: 2, initialDelayMs: 100, jitter: false } }],
  });
  gateway = createGateway({ nc: mesh.nc, log: createLogger({ name: "gateway-test", level: "silent" }), prefix: mesh.prefix, port: 0, host: "127.0.0.1", maxMessageBytes: 64 * 1024 });
  await gateway.start();
  // Root in a container has no user namespaces for Chromium's sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await mesh?.close();
});

describe.skipIf(!haveChromium)("the dashboard in Chromium", () => {
  it("starts a flow, shows its progress bar moving to 100 % and the status turning completed", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(gateway.url);
    await page.locator("#live", { hasText: "live updates: on" }).waitFor({ timeout: 10_000 });
    await page.locator("#flow option[value=nap]").waitFor({ state: "attached", timeout: 10_000 });
    await page.selectOption("#flow", "nap");
    await page.fill("#input", "{}");
    await page.click("#start-form button[type=submit]");
    await page.locator("#detail-card").waitFor({ state: "visible", timeout: 10_000 });

    // Read the step's bar as it moves: every distinct value the page shows, until the execution ends.
    const seen = new Set<number>();
    const bar = page.locator("#steps li [role=progressbar]").first();
    await waitFor(
      async () => {
        const value = Number(await bar.getAttribute("aria-valuenow"));
        if (Number.isFinite(value)) seen.add(value);
        return (await page.locator("#detail-status .status").textContent()) === "completed" ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50, message: "the dashboard to show the execution completed" },
    );
    const values = [...seen].sort((a, b) => a - b);
    console.log(`[dashboard-browser] progress values the page showed: ${values.join(", ")}`);
    expect(values.some((v) => v > 0 && v < 100)).toBe(true);
    expect(Number(await bar.getAttribute("aria-valuenow"))).toBe(100);
    expect(await page.locator("#steps li .status").first().textContent()).toBe("completed");

    // Operations panels: the worker pool with its load, the lane's queue-depth chart, a dead letter to replay.
    // The panels poll every 3 s; on a loaded CI box 10 s (three polls) was once not enough.
    await page.locator("#pools tr", { hasText: "delay" }).first().waitFor({ timeout: 20_000 });
    expect(await page.locator("#pools tr", { hasText: "delay" }).first().textContent()).toContain("us-east-1");
    await page.locator('#queues .lane[data-lane="us-east-1/delay"] polyline').waitFor({ state: "attached", timeout: 20_000 });
    const { executionId: doomed } = await mesh.api.start("doomed", { input: {} });
    await mesh.waitForStatus(doomed, "failed");
    const deadId = `${doomed}/call:2`;
    const deadRow = page.locator(`#dlq tr:has(td[title="${deadId}"])`);
    await deadRow.waitFor({ timeout: 15_000 });
    expect(await deadRow.textContent()).toContain("attempts_exhausted");
    await deadRow.locator("button.replay").click();
    // Replayed: the step runs again as attempt 3, and the entry leaves the "waiting for a decision" list.
    await deadRow.waitFor({ state: "detached", timeout: 15_000 });
    await waitFor(async () => (await mesh.api.get(doomed)).steps[0]!.attempts >= 3, { timeoutMs: 15_000, message: "the replayed attempt" });
    await page.click(`#executions tr:has-text("nap")`);

    const file = process.env["FM_DASHBOARD_SCREENSHOT"] ?? join(tmpdir(), `flowmonkey-dashboard-${process.pid}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);
  });

  it("a clicked execution opens in view; a waiting step shows its token and is resumed from the page", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    const { executionId } = await mesh.api.start("approval", { input: {} });
    await mesh.waitForStatus(executionId, "waiting");
    await page.goto(gateway.url);
    const row = page.locator(`#executions tr:has(td[title="${executionId}"])`);
    await row.waitFor({ timeout: 15_000 });
    await row.click();
    await page.locator("#detail-card").waitFor({ state: "visible", timeout: 10_000 });
    // In view: the detail card's top is inside the viewport, not far below it.
    await waitFor(async () => {
      const top = await page.locator("#detail-card").evaluate((node) => node.getBoundingClientRect().top);
      return top >= -1 && top < 820 ? true : undefined;
    }, { timeoutMs: 5000, message: "the detail card scrolled into view" });
    const token = page.locator("#steps li .token");
    await token.waitFor({ timeout: 10_000 });
    expect(await token.textContent()).toBe(`ok-${executionId}`);
    await page.click("#steps li button.resume");
    expect((await mesh.waitForStatus(executionId, "completed", 15_000)).status).toBe("completed");
    await page.locator("#detail-status .status", { hasText: "completed" }).waitFor({ timeout: 10_000 });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("the start form offers the picked flow's example; parallel steps show overlapping spans; pool load agrees with the queues", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(gateway.url);
    await page.locator("#flow option[value=pair]").waitFor({ state: "attached", timeout: 10_000 });
    await page.selectOption("#flow", "pair");
    expect(JSON.parse(await page.inputValue("#input"))).toEqual({ note: "two naps side by side" });
    await page.selectOption("#flow", "nap");
    expect(JSON.parse(await page.inputValue("#input"))).toEqual({});
    await page.selectOption("#flow", "pair");
    await page.click("#start-form button[type=submit]");
    await page.locator("#detail-status .status", { hasText: "completed" }).waitFor({ timeout: 20_000 });

    const span = async (stepId: string) => {
      const i = page.locator(`#steps li:has(span.mono:text-is("${stepId}")) .timeline i`);
      return { from: Number(await i.getAttribute("data-from")), to: Number(await i.getAttribute("data-to")) };
    };
    const [left, right, after] = [await span("left"), await span("right"), await span("after")];
    // left and right ran at once: each started before the other ended; after ran once both had.
    expect(left.from).toBeLessThan(right.to);
    expect(right.from).toBeLessThan(left.to);
    expect(after.from).toBeGreaterThanOrEqual(Math.max(left.to, right.to));

    // An 8 s step holds one delay slot: the pool row says so, as the queue snapshot does, and
    // frees it when the step ends.
    const { executionId } = await mesh.api.start("long", { input: {} });
    const pool = page.locator('#pools tr[data-pool="us-east-1/delay"] td.load');
    await pool.filter({ hasText: "1 running" }).waitFor({ timeout: 20_000 });
    // The same worker serves `fail`: its pool is idle (a worker-wide count would say 1 here too).
    expect(await page.locator('#pools tr[data-pool="us-east-1/fail"] td.load').textContent()).toContain("0 running");
    await mesh.waitForStatus(executionId, "completed", 20_000);
    await pool.filter({ hasText: "0 running" }).waitFor({ timeout: 20_000 });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("a map step shows its items done of total, live, up to all of them", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(gateway.url);
    const { executionId } = await mesh.api.start("fan", { input: {} });
    const row = page.locator(`#executions tr:has(td[title="${executionId}"])`);
    await row.waitFor({ timeout: 15_000 });
    await row.click();
    const hint = page.locator('#steps li:has(span.mono:text-is("each")) .hint.map');
    const done = async () => Number(await hint.getAttribute("data-done", { timeout: 1000 }).catch(() => "-1"));
    // Two of six done, the rest held: the page says so (live, or from the view it loaded).
    await waitFor(async () => ((await done()) === 2 ? true : undefined), { timeoutMs: 20_000, intervalMs: 50, message: "the map step at 2/6 items" });
    expect(await hint.textContent()).toContain("2/6 items");
    openGate();
    // Then all six, once the gate is open.
    await waitFor(async () => ((await done()) === 6 ? true : undefined), { timeoutMs: 20_000, intervalMs: 50, message: "the map step at 6/6 items" });
    expect(await hint.getAttribute("data-total")).toBe("6");
    expect(await hint.textContent()).toContain("6/6 items");
    await page.locator("#detail-status .status", { hasText: "completed" }).waitFor({ timeout: 10_000 });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("lists schedules with their last tick's execution, and pauses and resumes one", async () => {
    await mesh.api.putSchedule({ scheduleId: "nap-every-second", flowId: "nap", everyMs: 1000, overlap: "allow", missed: "skip" });
    const page = await browser.newPage({ viewport: { width: 1200, height: 820 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(gateway.url);
    const row = page.locator('#schedules tr[data-schedule="nap-every-second"]');
    // The ops panels refresh every 3 s: the row shows a started tick with its execution's link.
    await row.locator('[data-action="started"] a').waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toContain("every 1 s");
    const executionId = (await mesh.api.getSchedule("nap-every-second")).lastTick?.executionId;
    expect(executionId).toBeTruthy();

    await row.locator("button.toggle", { hasText: "Pause" }).click();
    await row.locator("button.toggle", { hasText: "Resume" }).waitFor({ timeout: 10_000 });
    expect((await mesh.api.getSchedule("nap-every-second")).paused).toBe(true);
    expect(await row.locator(".status.paused").textContent()).toBe("paused");
    await row.locator("button.toggle", { hasText: "Resume" }).click();
    await row.locator("button.toggle", { hasText: "Pause" }).waitFor({ timeout: 10_000 });
    expect((await mesh.api.getSchedule("nap-every-second")).paused).toBe(false);
    await mesh.api.deleteSchedule("nap-every-second");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("asks for an API token when the gateway wants one, then loads and goes live with it", async () => {
    const token = "dash-0123456789abcdef-operator";
    const guarded = createGateway({
      nc: mesh.nc,
      log: createLogger({ name: "gateway-test", level: "silent" }),
      prefix: mesh.prefix,
      port: 0,
      host: "127.0.0.1",
      apiTokens: { [hashToken(token)]: { scopes: ["admin"], name: "dashboard" } },
    });
    await guarded.start();
    try {
      const page = await browser.newPage();
      await page.goto(guarded.url);
      // Every /v1 call is 401 without a token: the form shows, the event stream stays off.
      await page.locator("#token-form").waitFor({ state: "visible", timeout: 10_000 });
      await page.locator("#live", { hasText: "live updates: off" }).waitFor({ timeout: 10_000 });
      expect(await page.locator("#flow option").count()).toBe(0);

      await page.fill("#token", token);
      await page.click("#token-form button[type=submit]");
      // The stream only opens with ?access_token= (EventSource sends no headers); fetches send the header.
      await page.locator("#live", { hasText: "live updates: on" }).waitFor({ timeout: 10_000 });
      await page.locator("#flow option[value=nap]").waitFor({ state: "attached", timeout: 10_000 });
      expect(await page.locator("#token-form").isHidden()).toBe(true);
      expect(await page.evaluate("sessionStorage.getItem('flowmonkey.apiToken')")).toBe(token);
      await page.close();
    } finally {
      await guarded.close();
    }
  });
});
