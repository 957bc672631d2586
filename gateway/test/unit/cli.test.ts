import type { DeadTaskSummary, ExecutionView } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { parseCommand, tokenArg, UsageError } from "../../src/cli/args.js";
import {
  circuitRows,
  deadTaskRows,
  formatDuration,
  lanesLines,
  progressBar,
  progressLines,
  queueLines,
  replayLines,
  stepRows,
  tenantLaneRows,
} from "../../src/cli/render.js";

const at = "2026-01-01T00:00:00.000Z";
const view: ExecutionView = {
  id: "e1",
  flowId: "hello",
  flowVersion: 1,
  status: "running",
  input: {},
  context: {},
  region: "us-east-1",
  createdAt: at,
  updatedAt: at,
  steps: [
    { stepId: "greet", handler: "transform", status: "completed", attempts: 1, output: "hi", startedAt: at, completedAt: "2026-01-01T00:00:01.500Z" },
    { stepId: "wait", handler: "delay", status: "dispatched", attempts: 1, startedAt: at },
    { stepId: "shout", handler: "echo", status: "failed", attempts: 2, error: { code: "HANDLER_FAILED", message: "boom", retryable: true } },
  ],
};

describe("render", () => {
  it("`flowmonkey queues` names a capability-qualified pool as on the wire, a plain pool by its handler", () => {
    const table = (headers: string[], rows: string[][]) => [headers, ...rows].map((r) => r.join(" | "));
    const row = { region: "us-east-1", handler: "video-encode", priority: "normal" as const, pending: 3, ackPending: 1, redelivered: 0, waiting: 2, paused: false };
    expect(queueLines([{ ...row, capabilities: [] }, { ...row, capabilities: ["fp16", "gpu"], pending: 5 }], table)).toEqual([
      "REGION | HANDLER | PRIORITY | PENDING | ACK PENDING | REDELIVERED | IDLE PULLS | STATE",
      "us-east-1 | video-encode | normal | 3 | 1 | 0 | 2 | open",
      "us-east-1 | video-encode~fp16~gpu | normal | 5 | 1 | 0 | 2 | open",
    ]);
  });

  it("`flowmonkey queues` lists a region whose domain did not answer below the table, instead of looking drained", () => {
    const table = (headers: string[], rows: string[][]) => [headers, ...rows].map((r) => r.join(" | "));
    const row = { region: "us-east-1", handler: "echo", priority: "normal" as const, capabilities: [], pending: 0, ackPending: 0, redelivered: 0, waiting: 1, paused: false };
    const regions = [
      { region: "eu-west-1", domain: "eu-west-1", reachable: false, error: "no responders" },
      { region: "us-east-1", domain: "hub", reachable: true },
    ];
    expect(queueLines([row], table, regions)).toEqual([
      "REGION | HANDLER | PRIORITY | PENDING | ACK PENDING | REDELIVERED | IDLE PULLS | STATE",
      "us-east-1 | echo | normal | 0 | 0 | 0 | 1 | open",
      "eu-west-1 (domain eu-west-1): unreachable — no responders",
    ]);
    expect(queueLines([], table, regions)).toEqual(["no worker pools yet (a pool appears when its first worker starts)", "eu-west-1 (domain eu-west-1): unreachable — no responders"]);
  });

  it("draws bounded progress bars", () => {
    expect(progressBar(50, 10)).toBe("[█████░░░░░]  50%");
    expect(progressBar(250, 4)).toBe("[████] 100%");
    expect(progressBar(-5, 4)).toBe("[░░░░]   0%");
  });

  it("formats durations for people", () => {
    expect([formatDuration(12), formatDuration(1500), formatDuration(61_000)]).toEqual(["12ms", "1.5s", "1m1s"]);
  });

  it("puts live progress on dispatched steps and 100% on finished ones", () => {
    const lines = progressLines(view, new Map([["wait", { percent: 40, message: "waited 800 of 2000 ms" }]]));
    expect(lines[0]).toContain("hello v1");
    expect(lines[1]).toContain("100%");
    expect(lines[2]).toMatch(/40%\s+waited 800 of 2000 ms$/);
    expect(lines[3]).toContain("HANDLER_FAILED: boom");
  });

  it("tabulates steps with attempts, duration and output or error", () => {
    const { headers, rows } = stepRows(view, Date.parse("2026-01-01T00:00:03.000Z"));
    expect(headers[0]).toBe("STEP");
    expect(rows[0]).toEqual(["greet", "transform", "✔ completed", "1", "1.5s", '"hi"']);
    expect(rows[1]?.[4]).toBe("3.0s");
    expect(rows[2]?.[5]).toBe("HANDLER_FAILED: boom");
  });
});

describe("dlq rendering", () => {
  const dead: DeadTaskSummary = {
    id: "e1/call:2",
    executionId: "e1",
    flowId: "flaky",
    stepId: "call",
    attempt: 2,
    region: "us-east-1",
    handler: "fail",
    reason: "attempts_exhausted",
    lastError: { code: "UPSTREAM_DOWN", message: "503", retryable: true },
    deliveries: 1,
    at,
  };

  it("tabulates dead tasks, with a REPLAYED column only when replayed ones are shown", () => {
    const open = deadTaskRows([dead, { ...dead, id: "e2/x:1", reason: "undeliverable", lastError: undefined }]);
    expect(open.headers).toEqual(["ID", "REASON", "DELIVERIES", "LAST ERROR", "AT"]);
    expect(open.rows).toEqual([
      ["e1/call:2", "attempts_exhausted", "1", "UPSTREAM_DOWN", at],
      ["e2/x:1", "undeliverable", "1", "", at],
    ]);
    const all = deadTaskRows([{ ...dead, replayedAt: "2026-01-02T00:00:00.000Z" }, dead], { replayed: true });
    expect(all.headers.at(-1)).toBe("REPLAYED");
    expect(all.rows.map((r) => r[5])).toEqual(["2026-01-02T00:00:00.000Z", ""]);
  });

  it("prints replayed ids first, then each refusal with its code", () => {
    expect(replayLines({ replayed: ["a:1"], refused: [{ id: "b:1", code: "DEAD_TASK_NOT_FOUND", message: "no dead-lettered task b:1" }] })).toEqual([
      "replayed  a:1",
      "refused   b:1  DEAD_TASK_NOT_FOUND: no dead-lettered task b:1",
    ]);
  });
});

describe("lanes rendering", () => {
  const now = Date.parse(at);
  const open = { lane: "us-east-1/fail", state: "open" as const, results: 0, failures: 0, openedAt: at, openUntil: "2026-01-01T00:01:00.000Z" };
  const counting = { lane: "eu-west-1/http", state: "closed" as const, results: 5, failures: 2 };
  const acme = { tenantId: "acme", lane: "us-east-1/delay", inFlight: 2, queued: 1, maxInFlight: 2 };
  // A stand-in for Output.table: cells joined by " | ".
  const table = (headers: string[], rows: string[][]) => [headers, ...rows].map((r) => r.join(" | "));

  it("tabulates circuits with failures/results and how long an open one still holds tasks", () => {
    const { headers, rows } = circuitRows([open, counting], now);
    expect(headers).toEqual(["LANE", "STATE", "FAILURES", "OPEN UNTIL"]);
    expect(rows).toEqual([
      ["us-east-1/fail", "open", "0/0", "2026-01-01T00:01:00.000Z (in 1m0s)"],
      ["eu-west-1/http", "closed", "2/5", ""],
    ]);
    // The cool-down is over: the time alone.
    expect(circuitRows([{ ...open, state: "half-open" }], now + 61_000).rows).toEqual([["us-east-1/fail", "half-open", "0/0", "2026-01-01T00:01:00.000Z"]]);
  });

  it("tabulates tenants' lanes with in flight, queued and the cap", () => {
    expect(tenantLaneRows([acme])).toEqual({
      headers: ["TENANT", "LANE", "IN FLIGHT", "QUEUED", "CAP"],
      rows: [["acme", "us-east-1/delay", "2", "1", "2"]],
    });
  });

  it("prints both tables, one line for an empty section, and one line when all is healthy", () => {
    expect(lanesLines({ circuits: [], tenants: [] }, table, now)).toEqual(["all lanes healthy"]);
    expect(lanesLines({ circuits: [open], tenants: [acme] }, table, now)).toEqual([
      "circuits (on the engine replica that answered):",
      "LANE | STATE | FAILURES | OPEN UNTIL",
      "us-east-1/fail | open | 0/0 | 2026-01-01T00:01:00.000Z (in 1m0s)",
      "",
      "tenants:",
      "TENANT | LANE | IN FLIGHT | QUEUED | CAP",
      "acme | us-east-1/delay | 2 | 1 | 2",
    ]);
    expect(lanesLines({ circuits: [], tenants: [acme] }, table, now).slice(0, 3)).toEqual([
      "circuits: all closed (on the engine replica that answered)",
      "",
      "tenants:",
    ]);
    expect(lanesLines({ circuits: [counting], tenants: [] }, table, now).slice(-1)).toEqual(["tenants: nothing in flight or queued"]);
  });
});

describe("args", () => {
  it("parses positionals and options, and refuses unknown options as usage errors", () => {
    const cmd = parseCommand(["hello", "--wait", "--input", "{}"], {
      usage: "start <flowId>",
      options: { wait: { type: "boolean" }, input: { type: "string" } },
      positionals: { min: 1, max: 1 },
    });
    expect(cmd).not.toBe("help");
    if (cmd === "help") return;
    expect([cmd.positionals, cmd.boolean("wait"), cmd.string("input")]).toEqual([["hello"], true, "{}"]);
    expect(() => parseCommand(["--bogus"], { usage: "x" })).toThrow(UsageError);
    expect(() => parseCommand([], { usage: "x <id>", positionals: { min: 1, max: 1 } })).toThrow(/expected 1 argument/);
  });

  it("names a bad id argument", () => {
    expect(() => tokenArg("a.b", "flowId")).toThrow(/flowId/);
    expect(tokenArg("ok-1", "flowId")).toBe("ok-1");
  });
});

describe("lanes: rate limits", () => {
  it("adds a rate-limit table when the engine has limits, and is not 'healthy' then", () => {
    const table = (headers: string[], rows: string[][]) => [headers.join("|"), ...rows.map((r) => r.join("|"))];
    expect(
      lanesLines({ circuits: [], tenants: [], rates: [{ key: "*/echo", perSecond: 10 }, { key: "us-east-1/echo", perSecond: 10, heldUntil: "2026-01-01T00:00:01.000Z" }] }, table),
    ).toEqual([
      "circuits: all closed (on the engine replica that answered)",
      "",
      "tenants: nothing in flight or queued",
      "",
      "rate limits (on the engine replica that answered):",
      "KEY|PER SECOND|HELD UNTIL",
      "*/echo|10|",
      "us-east-1/echo|10|2026-01-01T00:00:01.000Z",
    ]);
    expect(lanesLines({ circuits: [], tenants: [], rates: [] }, table)).toEqual(["all lanes healthy"]);
  });
});
