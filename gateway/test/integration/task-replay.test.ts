/**
 * `flowmonkey task replay` (built CLI, child process) and `fm.api.tasks.get` against a real mesh:
 * a step's attempt fetched as dispatched and its handler run locally, exit 0 / 1 by its outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";
import { runCli } from "./run-cli.js";

const nats = useNatsServer();
const pg = useTestDatabase();
let mesh: TestMesh;

// A small inline threshold, so a modest context is offloaded to the blob bucket as a contextRef.
beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, engine: { contextInlineMaxBytes: 1024 } });
});
afterAll(async () => {
  await mesh?.close();
});

const cli = (...args: string[]) => runCli({ natsUrl: nats.url, prefix: mesh.prefix }, ...args);

describe("flowmonkey task replay", () => {
  it("reproduces a failed fail step's failure with the same code (exit 1)", async () => {
    await mesh.putFlow({ id: "doomed", steps: [{ id: "boom", handler: "fail", input: { code: "NOPE", message: "always fails", retryable: false } }] });
    const { executionId } = await mesh.api.start("doomed", { input: {} });
    await mesh.waitForStatus(executionId, "failed");

    const human = await cli("task", "replay", `${executionId}/boom`);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain("failure: NOPE: always fails");
    expect(human.stdout).toContain("a handler that needs some sees none");
  });

  it("replays a dead-lettered attempt from its stored task, and an earlier attempt rebuilt", async () => {
    await mesh.putFlow({
      id: "flaky",
      steps: [{ id: "call", handler: "fail", input: { code: "UPSTREAM_DOWN", retryable: true }, retry: { maxAttempts: 2, backoff: "fixed", initialDelayMs: 50, jitter: false } }],
    });
    const { executionId } = await mesh.api.start("flaky", { input: {} });
    await mesh.waitForStatus(executionId, "failed");

    const latest = await cli("task", "replay", `${executionId}/call`, "--json");
    expect(latest.code).toBe(1);
    expect(JSON.parse(latest.stdout)).toMatchObject({ taskId: `${executionId}/call`, attempt: 2, source: "dead-letter", result: { failure: { code: "UPSTREAM_DOWN" } } });
    const first = await cli("task", "replay", `${executionId}/call`, "--attempt", "1", "--json");
    expect(JSON.parse(first.stdout)).toMatchObject({ attempt: 1, source: "rebuilt", result: { failure: { code: "UPSTREAM_DOWN" } } });
  });

  it("prints an echo step's output (exit 0); a large context comes as a contextRef", async () => {
    await mesh.putFlow({ id: "shout", steps: [{ id: "say", handler: "echo", input: { said: "{% input.word %}" } }] });
    const context = { big: "x".repeat(4096) };
    const { executionId } = await mesh.api.start("shout", { input: { word: "hi" }, context });
    await mesh.waitForStatus(executionId, "completed");

    const { task, vaultRemoved } = await mesh.api.getTask(`${executionId}/say`);
    expect(task).toMatchObject({ input: { said: "hi" }, context: {}, vault: {} });
    expect(task.contextRef?.name).toBeTruthy();
    expect(vaultRemoved).toEqual([]);

    const run = await cli("task", "replay", `${executionId}/say`);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('success: {"said":"hi"}');
  });

  it("prints a delay step's progress as a dry run", async () => {
    await mesh.putFlow({ id: "slow", steps: [{ id: "nap", handler: "delay", input: { ms: 200 } }] });
    const { executionId } = await mesh.api.start("slow", { input: {} });
    await mesh.waitForStatus(executionId, "completed");

    const run = await cli("task", "replay", `${executionId}/nap`, "--json");
    expect(run.code).toBe(0);
    // --json: one NDJSON line per effect as it happens, then the result document.
    const lines = run.stdout.trim().split("\n");
    const effects = lines.filter((l) => l.startsWith('{"effect"')).map((l) => JSON.parse(l) as { effect: { kind: string; subject: string } });
    expect(effects.length).toBeGreaterThan(0);
    expect(effects[0]!.effect).toMatchObject({ kind: "progress", subject: mesh.names.subjects.regionProgress("us-east-1", executionId, "nap") });
    expect(JSON.parse(lines.slice(effects.length).join("\n"))).toMatchObject({ result: { outcome: "success" } });
  });

  it("an unknown task exits 1 with its code; a malformed id exits 2", async () => {
    const unknownExecution = await cli("task", "replay", "no-such-execution/step");
    expect(unknownExecution.code).toBe(1);
    expect(unknownExecution.stderr).toContain("EXECUTION_NOT_FOUND");

    await mesh.putFlow({ id: "once", steps: [{ id: "only", handler: "echo", input: {} }] });
    const { executionId } = await mesh.api.start("once", { input: {} });
    await mesh.waitForStatus(executionId, "completed");
    const unknownStep = await cli("task", "replay", `${executionId}/nope`);
    expect(unknownStep.code).toBe(1);
    expect(unknownStep.stderr).toContain("STEP_NOT_FOUND");
    const unknownAttempt = await cli("task", "replay", `${executionId}/only`, "--attempt", "9");
    expect(unknownAttempt.code).toBe(1);
    expect(unknownAttempt.stderr).toContain("TASK_NOT_FOUND");

    const malformed = await cli("task", "replay", "not-a-task-id");
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("INVALID_INPUT");
  });
});
