import { describe, expect, it } from "vitest";
import { buildGraph, FlowDefinition, type FlowGraph, type StepStatus } from "@flowmonkey/shared";
import { executionOutcome, initialSteps, liveStatus, readySteps, type ExecutionOutcome } from "../../src/scheduler/decide.js";
import type { StepState } from "../../src/scheduler/state.js";

type StepSpec = { id: string; dependsOn?: string[]; onFailure?: "fail" | "continue" };

function graphOf(...steps: Array<string | StepSpec>): FlowGraph {
  return buildGraph(
    FlowDefinition.parse({
      id: "f",
      steps: steps.map((s) => (typeof s === "string" ? { id: s, handler: "echo" } : { handler: "echo", ...s })),
    }),
  );
}

/** Step states from a compact table: `{ a: "completed", b: "pending" }`. */
function states(table: Record<string, StepStatus>): Record<string, StepState> {
  return Object.fromEntries(
    Object.entries(table).map(([id, status]) => [id, { status, attempts: status === "pending" ? 0 : 1 } satisfies StepState]),
  );
}

const sequential = graphOf("a", "b", "c");
// a → (b, c) → d, plus e that starts with the execution.
const diamond = graphOf("a", { id: "b", dependsOn: ["a"] }, { id: "c", dependsOn: ["a"] }, { id: "d", dependsOn: ["b", "c"] }, { id: "e", dependsOn: [] });
// a may fail without failing the execution; b runs after it either way.
const tolerant = graphOf({ id: "a", onFailure: "continue" }, "b");

describe("initialSteps", () => {
  it("every step pending with no attempts, in definition order", () => {
    const steps = initialSteps(diamond);
    expect(Object.keys(steps)).toEqual(["a", "b", "c", "d", "e"]);
    for (const s of Object.values(steps)) expect(s).toEqual({ status: "pending", attempts: 0 });
  });

  it("returns fresh objects each time", () => {
    const one = initialSteps(sequential);
    one.a!.status = "completed";
    expect(initialSteps(sequential).a!.status).toBe("pending");
  });
});

describe("readySteps", () => {
  it.each<[string, FlowGraph, Record<string, StepStatus>, string[]]>([
    ["sequential: only the first step at the start", sequential, { a: "pending", b: "pending", c: "pending" }, ["a"]],
    ["sequential: nothing while the first runs", sequential, { a: "dispatched", b: "pending", c: "pending" }, []],
    ["sequential: the next one after the first completes", sequential, { a: "completed", b: "pending", c: "pending" }, ["b"]],
    ["sequential: the last one", sequential, { a: "completed", b: "completed", c: "pending" }, ["c"]],
    ["sequential: nothing when all are done", sequential, { a: "completed", b: "completed", c: "completed" }, []],
    ["DAG: roots start together (incl. dependsOn: [])", diamond, { a: "pending", b: "pending", c: "pending", d: "pending", e: "pending" }, ["a", "e"]],
    ["DAG: fan-out after the root", diamond, { a: "completed", b: "pending", c: "pending", d: "pending", e: "dispatched" }, ["b", "c"]],
    ["DAG: fan-in waits for every branch", diamond, { a: "completed", b: "completed", c: "dispatched", d: "pending", e: "completed" }, []],
    ["DAG: fan-in once every branch is done", diamond, { a: "completed", b: "completed", c: "completed", d: "pending", e: "completed" }, ["d"]],
    ["skipped counts as done", diamond, { a: "completed", b: "skipped", c: "completed", d: "pending", e: "completed" }, ["d"]],
    ["skipped root lets both branches run", diamond, { a: "skipped", b: "pending", c: "pending", d: "pending", e: "skipped" }, ["b", "c"]],
    ["a failed step blocks its dependents", diamond, { a: "completed", b: "failed", c: "completed", d: "pending", e: "completed" }, []],
    ["a waiting step blocks its dependents", sequential, { a: "waiting", b: "pending", c: "pending" }, []],
    ["a cancelled step blocks its dependents", sequential, { a: "cancelled", b: "pending", c: "pending" }, []],
    ["failed + onFailure continue lets dependents run", tolerant, { a: "failed", b: "pending" }, ["b"]],
    ["only pending steps are returned", sequential, { a: "completed", b: "dispatched", c: "pending" }, []],
    ["a step with no state is not ready", sequential, { a: "completed" }, []],
  ])("%s", (_name, graph, table, ready) => {
    expect(readySteps(graph, states(table))).toEqual(ready);
  });

  it("returns ready steps in definition order", () => {
    const g = graphOf({ id: "z", dependsOn: [] }, { id: "y", dependsOn: [] }, { id: "x", dependsOn: [] });
    expect(readySteps(g, initialSteps(g))).toEqual(["z", "y", "x"]);
  });
});

describe("executionOutcome", () => {
  it.each<[string, FlowGraph, Record<string, StepStatus>, ExecutionOutcome]>([
    ["running at the start", sequential, { a: "pending", b: "pending", c: "pending" }, { kind: "running" }],
    ["running while a step is dispatched", sequential, { a: "completed", b: "dispatched", c: "pending" }, { kind: "running" }],
    ["running while a step waits", sequential, { a: "completed", b: "waiting", c: "pending" }, { kind: "running" }],
    ["completed when every step completed", sequential, { a: "completed", b: "completed", c: "completed" }, { kind: "completed" }],
    ["skipped counts as done", sequential, { a: "completed", b: "skipped", c: "skipped" }, { kind: "completed" }],
    ["DAG completes only when every branch is done", diamond, { a: "completed", b: "completed", c: "completed", d: "completed", e: "dispatched" }, { kind: "running" }],
    ["DAG completed", diamond, { a: "completed", b: "completed", c: "skipped", d: "completed", e: "completed" }, { kind: "completed" }],
    ["a failed step fails the execution", sequential, { a: "completed", b: "failed", c: "pending" }, { kind: "failed", stepId: "b" }],
    ["fails even while other branches still run", diamond, { a: "completed", b: "failed", c: "dispatched", d: "pending", e: "dispatched" }, { kind: "failed", stepId: "b" }],
    ["the first failed step in definition order is named", diamond, { a: "completed", b: "failed", c: "failed", d: "pending", e: "completed" }, { kind: "failed", stepId: "b" }],
    ["failed + onFailure continue keeps running", tolerant, { a: "failed", b: "pending" }, { kind: "running" }],
    ["failed + onFailure continue completes", tolerant, { a: "failed", b: "completed" }, { kind: "completed" }],
    ["a failed step without continue after a tolerated one", tolerant, { a: "failed", b: "failed" }, { kind: "failed", stepId: "b" }],
    ["missing step state is still running", sequential, { a: "completed", b: "completed" }, { kind: "running" }],
  ])("%s", (_name, graph, table, outcome) => {
    expect(executionOutcome(graph, states(table))).toEqual(outcome);
  });
});

describe("a whole run, decided step by step", () => {
  it("the diamond runs a+e, then b+c, then d, then completes", () => {
    const steps = initialSteps(diamond);
    const rounds: string[][] = [];
    for (let i = 0; i < 10 && executionOutcome(diamond, steps).kind === "running"; i++) {
      const ready = readySteps(diamond, steps);
      rounds.push(ready);
      for (const id of ready) steps[id] = { status: "completed", attempts: 1 };
    }
    expect(rounds).toEqual([["a", "e"], ["b", "c"], ["d"]]);
    expect(executionOutcome(diamond, steps)).toEqual({ kind: "completed" });
  });
});

describe("liveStatus", () => {
  it("is waiting only while nothing runs and something waits", () => {
    expect(liveStatus({ a: { status: "waiting", attempts: 1 }, b: { status: "pending", attempts: 0 } })).toBe("waiting");
    expect(liveStatus({ a: { status: "waiting", attempts: 1 }, b: { status: "dispatched", attempts: 1 } })).toBe("running");
    expect(liveStatus({ a: { status: "completed", attempts: 1 }, b: { status: "pending", attempts: 0 } })).toBe("running");
  });
});
