/**
 * Schedules from the outside: `flowmonkey schedules put|ls|get|pause|resume|rm` as a child
 * process, PUT/GET/DELETE /v1/schedules on the gateway, and `flowmonkey start`'s tenant,
 * priority, region and label flags — against a real mesh.
 */
import { createLogger } from "@flowmonkey/shared";
import { createGateway, type Gateway } from "@flowmonkey/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { waitFor } from "../../../test/support/wait.js";
import { runCli } from "./run-cli.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let gateway: Gateway;
let base: string;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, engine: { scheduleTickMs: 100 } });
  gateway = createGateway({ nc: mesh.nc, log: createLogger({ name: "schedules-test", level: "silent" }), prefix: mesh.prefix, port: 0, host: "127.0.0.1", maxMessageBytes: 128 * 1024 });
  await gateway.start();
  base = gateway.url!;
  await mesh.putFlow({ id: "hello", steps: [{ id: "say", handler: "echo", input: { text: "{% input.text %}" } }] });
});
afterAll(async () => {
  await gateway?.close();
  await mesh?.close();
});

const target = () => ({ natsUrl: nats.url, prefix: mesh.prefix });

describe("flowmonkey schedules", () => {
  it("put, ls, get, pause, resume, rm", async () => {
    const put = await runCli(target(), "schedules", "put", "hourly", "hello", "--cron", "0 * * * *", "--timezone", "Asia/Tokyo", "--input", '{"text":"hi"}', "--json");
    expect(put.code).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ scheduleId: "hourly", flowId: "hello", cron: "0 * * * *", timezone: "Asia/Tokyo", created: true });
    const ls = await runCli(target(), "schedules", "ls");
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/hourly {2}hello {2}cron "0 \* \* \* \*" Asia\/Tokyo {2}next \d{4}-/);
    expect((await runCli(target(), "schedules", "pause", "hourly")).stdout).toMatch(/^paused hourly/);
    expect(JSON.parse((await runCli(target(), "schedules", "get", "hourly", "--json")).stdout)).toMatchObject({ paused: true });
    expect((await runCli(target(), "schedules", "resume", "hourly")).stdout).toMatch(/^resumed hourly .* next \d{4}-/);
    expect((await runCli(target(), "schedules", "rm", "hourly")).stdout).toContain("deleted hourly");
    const gone = await runCli(target(), "schedules", "get", "hourly");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("SCHEDULE_NOT_FOUND");
  });

  it("usage errors exit 2 before anything is sent", async () => {
    const both = await runCli(target(), "schedules", "put", "x", "hello", "--cron", "* * * * *", "--every", "1000");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("exactly one of cron and everyMs");
    expect((await runCli(target(), "schedules", "put", "x")).code).toBe(2);
  });
});

describe("/v1/schedules", () => {
  it("PUT creates (201) and replaces (200); the schedule fires; DELETE removes it", async () => {
    const put = (body: unknown) => fetch(`${base}/v1/schedules/every-sec`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const created = await put({ flowId: "hello", everyMs: 1000, input: { text: "http" }, overlap: "allow" });
    expect(created.status).toBe(201);
    expect((await put({ flowId: "hello", everyMs: 1000, input: { text: "http" }, overlap: "allow" })).status).toBe(200);
    const fired = await waitFor(async () => {
      const view = (await (await fetch(`${base}/v1/schedules/every-sec`)).json()) as { lastTick?: { action: string; executionId?: string } };
      return view.lastTick?.action === "started" ? view.lastTick : undefined;
    }, { message: "a tick started over HTTP's schedule" });
    expect((await mesh.waitForStatus(fired.executionId!, "completed")).output).toBeDefined();
    const list = (await (await fetch(`${base}/v1/schedules?flowId=hello`)).json()) as { schedules: Array<{ scheduleId: string }> };
    expect(list.schedules.map((s) => s.scheduleId)).toContain("every-sec");
    const bad = await put({ flowId: "hello", cron: "not a cron" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe("INVALID_INPUT");
    const del = await fetch(`${base}/v1/schedules/every-sec`, { method: "DELETE" });
    expect(await del.json()).toEqual({ scheduleId: "every-sec", deleted: true });
    expect((await fetch(`${base}/v1/schedules/every-sec`)).status).toBe(404);
  });
});

describe("flowmonkey start flags", () => {
  it("--tenant --priority --region --labels reach the execution", async () => {
    const run = await runCli(target(), "start", "hello", "--input", '{"text":"x"}', "--tenant", "acme", "--priority", "high", "--region", "us-east-1", "--labels", "team=ops,env=test", "--wait", "--json");
    expect(run.code).toBe(0);
    const view = JSON.parse(run.stdout) as { id: string; tenantId?: string; region: string; labels?: Record<string, string> };
    expect(view).toMatchObject({ tenantId: "acme", region: "us-east-1", labels: { team: "ops", env: "test" } });
    const { rows } = await mesh.engine.db.query<{ priority: string }>("SELECT priority FROM executions WHERE id = $1", [view.id]);
    expect(rows[0]?.priority).toBe("high");
  });

  it("a bad flag value is a usage error (exit 2)", async () => {
    expect((await runCli(target(), "start", "hello", "--priority", "urgent")).code).toBe(2);
    expect((await runCli(target(), "start", "hello", "--labels", "novalue")).code).toBe(2);
  });
});
