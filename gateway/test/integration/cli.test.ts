/**
 * The built `flowmonkey` CLI (gateway/dist/cli/main.js) as a child process against a real mesh:
 * output, --json and exit codes (0 ok, 1 failed, 2 usage/config).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { runCli } from "./run-cli.js";
import { useTestDatabase } from "../../../test/support/postgres.js";

const EXAMPLES = fileURLToPath(new URL("../../../examples/flows/", import.meta.url));
const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;
let tmp: string;

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url });
  tmp = await mkdtemp(join(tmpdir(), "fm-cli-"));
});
afterAll(async () => {
  await mesh?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli({ natsUrl: nats.url, prefix: mesh.prefix }, ...args);

describe("flowmonkey CLI", () => {
  it("flows push registers the example files", async () => {
    const run = await cli("flows", "push", join(EXAMPLES, "hello.yaml"), join(EXAMPLES, "order-fanout.yaml"), "--json");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).flows.map((f: { flowId: string }) => f.flowId)).toEqual(["hello", "order-fanout"]);
  });

  it("flows push refuses an invalid file with its path and INVALID_FLOW (exit 1)", async () => {
    const file = join(tmp, "broken.yaml");
    await writeFile(file, "id: broken\nsteps:\n  - id: a\n    handler: echo\n    dependsOn: [nope]\n");
    const run = await cli("flows", "push", file);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("INVALID_FLOW");
    expect(run.stderr).toContain("nope");
  });

  it("start --wait exits 0 with the output when the execution completes", async () => {
    await mesh.putFlow({ id: "quick", steps: [{ id: "say", handler: "echo", input: { said: "{% input.word %}" } }], output: "{% steps.say.said %}" });
    const run = await cli("start", "quick", "--input", '{"word":"hi"}', "--wait", "--json");
    expect(run.code).toBe(0);
    const view = JSON.parse(run.stdout);
    expect(view).toMatchObject({ status: "completed", output: "hi" });

    const status = await cli("status", view.id);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/say\s+echo\s+✔ completed/);
  });

  it("status shows a map step's items; the example map flow greets each name in order", async () => {
    expect((await cli("flows", "push", join(EXAMPLES, "greet-all.yaml"))).code).toBe(0);
    const run = await cli("start", "greet-all", "--input", '{"names":["ada","grace","linus","barbara"]}', "--wait", "--json");
    expect(run.code).toBe(0);
    const view = JSON.parse(run.stdout);
    expect(view.output).toEqual(["hello ada (1)", "hello grace (2)", "hello linus (3)", "hello barbara (4)"]);
    const status = await cli("status", view.id);
    expect(status.stdout).toContain("greet: map, 4/4 items done (0 running, 0 failed)");
  });

  it("ls, flows ls and cancel: list executions and flows, cancel a running execution", async () => {
    await mesh.putFlow({ id: "slow-cli", steps: [{ id: "nap", handler: "delay", input: { ms: 60_000 } }] });
    const { executionId } = await mesh.api.start("slow-cli", { input: {} });
    await mesh.waitForStatus(executionId, "running");

    const flows = await cli("flows", "ls", "--json");
    expect(flows.code).toBe(0);
    expect(JSON.parse(flows.stdout).flows.map((f: { flowId: string }) => f.flowId)).toContain("slow-cli");
    expect((await cli("flows", "ls")).stdout).toMatch(/slow-cli\s+1\s/);

    const listed = await cli("ls", "--flow", "slow-cli", "--status", "running");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(executionId);

    const cancelled = await cli("cancel", executionId, "--json");
    expect(cancelled.code).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toEqual({ executionId, status: "cancelled" });
    const after = JSON.parse((await cli("ls", "--flow", "slow-cli", "--json")).stdout);
    expect(after.executions.map((e: { id: string; status: string }) => [e.id, e.status])).toEqual([[executionId, "cancelled"]]);

    // Bad options are usage errors (exit 2), never a stack trace.
    const bad = await cli("ls", "--status", "sleeping");
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect((await cli("cancel")).code).toBe(2);
  });

  it("status says what a step waits on: no worker for its handler, or its resume token", async () => {
    await mesh.putFlow({ id: "orphan-step", steps: [{ id: "lost", handler: "nosuch" }] });
    const lost = await mesh.api.start("orphan-step", { input: {} });
    await mesh.waitForStatus(lost.executionId, "running");
    const status = await cli("status", lost.executionId);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("lost: waiting for a worker of nosuch in us-east-1: none registered");

    await mesh.putFlow({ id: "parked", steps: [{ id: "hold", handler: "wait", input: { resumeToken: "{% 'tok-' & execution.id %}", reason: "an approval" } }] });
    const parked = await mesh.api.start("parked", { input: {} });
    await mesh.waitForStatus(parked.executionId, "waiting");
    const waiting = await cli("status", parked.executionId);
    expect(waiting.stdout).toContain(`hold: waiting (resume token tok-${parked.executionId}`);
    await mesh.api.cancel(parked.executionId);
    await mesh.api.cancel(lost.executionId);
  });

  it("start --wait exits 1 when the execution fails", async () => {
    await mesh.putFlow({
      id: "doomed",
      steps: [{ id: "boom", handler: "fail", input: { code: "NOPE", message: "always fails", retryable: false } }],
    });
    const run = await cli("start", "doomed", "--wait");
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("failed");
  });

  it("dlq ls lists a dead-lettered task and dlq replay replays it; a refused id exits 1", async () => {
    await mesh.putFlow({
      id: "flaky",
      steps: [
        {
          id: "call",
          handler: "fail",
          input: { code: "UPSTREAM_DOWN", retryable: true },
          retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false },
        },
      ],
    });
    const { executionId } = await mesh.api.start("flaky", { input: {} });
    await mesh.waitForStatus(executionId, "failed");
    const id = `${executionId}/call:2`;

    const ls = await cli("dlq", "ls", "--handler", "fail", "--json");
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).deadTasks.map((d: { id: string; reason: string }) => [d.id, d.reason])).toEqual([[id, "attempts_exhausted"]]);
    const table = await cli("dlq", "ls", "--region", "us-east-1");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+REASON\s+DELIVERIES\s+LAST ERROR\s+AT/);
    expect(table.stdout).toContain(id);
    expect(table.stdout).toMatch(/attempts_exhausted\s+\d+\s+UPSTREAM_DOWN/);

    const replay = await cli("dlq", "replay", id, "--json");
    expect(replay.code).toBe(0);
    expect(JSON.parse(replay.stdout)).toEqual({ replayed: [id], refused: [] });

    const again = await cli("dlq", "replay", id, "no-such-task:1");
    expect(again.code).toBe(1);
    expect(again.stdout.split("\n").find((line) => line.includes(id))).toMatch(/^refused\s+\S+\s+INVALID_STATE: .*already replayed/);
    expect(again.stdout).toMatch(/refused\s+no-such-task:1\s+DEAD_TASK_NOT_FOUND/);
    const againJson = await cli("dlq", "replay", "no-such-task:1", "--json");
    expect(againJson.code).toBe(1);
    expect(JSON.parse(againJson.stdout).refused).toEqual([expect.objectContaining({ id: "no-such-task:1", code: "DEAD_TASK_NOT_FOUND" })]);

    // Replayed ones only with --all, with when they were replayed.
    const open = await cli("dlq", "ls", "--handler", "fail", "--json");
    expect(JSON.parse(open.stdout).deadTasks.map((d: { id: string }) => d.id)).not.toContain(id);
    const all = await cli("dlq", "ls", "--handler", "fail", "--all");
    expect(all.stdout).toMatch(/REPLAYED/);
    expect(all.stdout).toContain(id);

    // Usage errors: exit 2.
    expect((await cli("dlq", "replay")).code).toBe(2);
    const badLimit = await cli("dlq", "ls", "--limit", "0");
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain("limit");
    expect((await cli("dlq")).code).toBe(2);
  });

  it("lists the dlq commands in the help text", async () => {
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("flowmonkey dlq ls");
    expect(help.stdout).toContain("flowmonkey dlq replay <id...>");
  });

  it("reports request errors with their code (exit 1) and usage errors (exit 2)", async () => {
    const missing = await cli("start", "no-such-flow");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("FLOW_NOT_FOUND");

    const json = await cli("status", "no-such-execution", "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: "EXECUTION_NOT_FOUND" } });

    expect((await cli("start")).code).toBe(2);
    expect((await cli("start", "quick", "--input", "{oops")).stderr).toContain("INVALID_JSON");
    expect((await cli("status", "x", "--no-such-flag")).code).toBe(2);
    expect((await cli("frobnicate")).code).toBe(2);
  });
});
