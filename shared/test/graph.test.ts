import { describe, expect, it } from "vitest";
import { FlowDefinition, type FlowDefinitionInput } from "../src/flows/definition.js";
import { buildGraph, findCycle } from "../src/flows/graph.js";
import { parseFlowDefinition } from "../src/flows/load-file.js";
import { FmError } from "../src/errors/fm-error.js";

/** A flow of echo steps; each entry is `id` or `[id, dependsOn]`. */
function flow(...steps: Array<string | [string, string[]]>): FlowDefinition {
  const input: FlowDefinitionInput = {
    id: "f",
    steps: steps.map((s) => (typeof s === "string" ? { id: s, handler: "echo" } : { id: s[0], handler: "echo", dependsOn: s[1] })),
  };
  return FlowDefinition.parse(input);
}

const depsOf = (f: FlowDefinition) => Object.fromEntries(buildGraph(f).dependsOn);
const dependentsOf = (f: FlowDefinition) => Object.fromEntries(buildGraph(f).dependents);

function flowError(fn: () => unknown): FmError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FmError);
    expect((err as FmError).code).toBe("INVALID_FLOW");
    return err as FmError;
  }
  throw new Error("expected INVALID_FLOW");
}

describe("buildGraph ordering", () => {
  it.each<{ name: string; flow: FlowDefinition; deps: Record<string, string[]>; dependents: Record<string, string[]> }>([
    {
      name: "steps without dependsOn run in listed order",
      flow: flow("a", "b", "c"),
      deps: { a: [], b: ["a"], c: ["b"] },
      dependents: { a: ["b"], b: ["c"], c: [] },
    },
    {
      name: "dependsOn: [] starts with the execution",
      flow: flow("a", ["b", []], "c"),
      deps: { a: [], b: [], c: ["b"] },
      dependents: { a: [], b: ["c"], c: [] },
    },
    {
      name: "fan-out and fan-in",
      flow: flow("a", ["b", ["a"]], ["c", ["a"]], ["d", ["b", "c"]]),
      deps: { a: [], b: ["a"], c: ["a"], d: ["b", "c"] },
      dependents: { a: ["b", "c"], b: ["d"], c: ["d"], d: [] },
    },
    {
      name: "a dependency may be listed later than its dependent",
      flow: flow(["a", ["b"]], ["b", []]),
      deps: { a: ["b"], b: [] },
      dependents: { a: [], b: ["a"] },
    },
    {
      name: "a repeated dependency counts once",
      flow: flow("a", ["b", ["a", "a"]]),
      deps: { a: [], b: ["a"] },
      dependents: { a: ["b"], b: [] },
    },
    {
      name: "an implicit step after an explicit one follows the one listed before it",
      flow: flow("a", ["b", []], "c"),
      deps: { a: [], b: [], c: ["b"] },
      dependents: { a: [], b: ["c"], c: [] },
    },
  ])("$name", ({ flow: f, deps, dependents }) => {
    expect(depsOf(f)).toEqual(deps);
    expect(dependentsOf(f)).toEqual(dependents);
    expect(buildGraph(f).order).toEqual(f.steps.map((s) => s.id));
    expect([...buildGraph(f).steps.keys()]).toEqual(f.steps.map((s) => s.id));
  });
});

describe("buildGraph rejects bad graphs with INVALID_FLOW", () => {
  it("duplicate step ids", () => {
    expect(flowError(() => buildGraph(flow("a", "b", "a"))).message).toMatch(/step id "a" is used twice/);
  });

  it("unknown dependencies", () => {
    expect(flowError(() => buildGraph(flow("a", ["b", ["nope"]]))).message).toMatch(/"b" depends on unknown step "nope"/);
  });

  it("a step depending on itself", () => {
    expect(flowError(() => buildGraph(flow(["a", ["a"]]))).message).toMatch(/"a" depends on itself/);
  });

  it("a two-step cycle prints its path", () => {
    const err = flowError(() => buildGraph(flow(["a", ["b"]], ["b", ["a"]])));
    expect(err.message).toMatch(/cycle: a -> b -> a/);
    expect(err.message).toContain('flow "f"');
  });

  it("a longer cycle behind a valid prefix prints only the cycle", () => {
    const err = flowError(() => buildGraph(flow("start", ["x", ["start", "z"]], ["y", ["x"]], ["z", ["y"]])));
    expect(err.message).toMatch(/cycle: x -> z -> y -> x/);
  });
});

describe("findCycle", () => {
  it.each<[string, Record<string, string[]>, string[] | undefined]>([
    ["no edges", { a: [], b: [] }, undefined],
    ["a diamond is not a cycle", { a: [], b: ["a"], c: ["a"], d: ["b", "c"] }, undefined],
    ["self loop", { a: ["a"] }, ["a", "a"]],
    ["three-cycle", { a: ["c"], b: ["a"], c: ["b"] }, ["a", "c", "b", "a"]],
  ])("%s", (_name, edges, cycle) => {
    expect(findCycle(Object.keys(edges), new Map(Object.entries(edges)))).toEqual(cycle);
  });
});

const DESIGN_EXAMPLE = `
id: order-flow
version: 1.0.0
steps:
  - id: charge
    handler: http-request            # handler type; the worker pool that serves it
    input: { url: "https://pay.example/charge", body: "{% input.order %}" }
    retry: { maxAttempts: 3, backoff: exponential, initialDelayMs: 5000 }   # 5s, 10s, 20s
    timeoutMs: 30000
    region: eu-west-1                # affinity; or \`residency: gdpr\` (a rule: allowed regions)
    priority: high
    vault: [stripe.key]              # the only secrets this step's worker receives
  - id: notify
    handler: transform
    dependsOn: [charge]              # DAG: steps whose dependencies are done run in parallel
    when: "{% steps.charge.status = 200 %}"
    input:                           # the engine resolves {% %} before dispatch; the
      expression: "{'msg': 'paid ' & order.id}"   # transform handler evaluates its own
      data: "{% input %}"                         # plain JSONata \`expression\` over \`data\`
output: "{% steps.notify %}"
`;

describe("parseFlowDefinition", () => {
  it("accepts DESIGN.md's order-flow example", () => {
    const def = parseFlowDefinition(DESIGN_EXAMPLE, "order-flow.yaml");
    expect(def.id).toBe("order-flow");
    expect(def.version).toBe("1.0.0");
    expect(def.output).toBe("{% steps.notify %}");
    expect(def.steps.map((s) => s.id)).toEqual(["charge", "notify"]);
    const [charge, notify] = def.steps;
    expect(charge).toMatchObject({
      handler: "http-request",
      input: { url: "https://pay.example/charge", body: "{% input.order %}" },
      retry: { maxAttempts: 3, backoff: "exponential", initialDelayMs: 5000, maxDelayMs: 300_000, jitter: true },
      timeoutMs: 30_000,
      region: "eu-west-1",
      priority: "high",
      vault: ["stripe.key"],
      onFailure: "fail",
    });
    expect(notify).toMatchObject({
      handler: "transform",
      dependsOn: ["charge"],
      when: "{% steps.charge.status = 200 %}",
      input: { expression: "{'msg': 'paid ' & order.id}", data: "{% input %}" },
    });
    expect(depsOf(def)).toEqual({ charge: [], notify: ["charge"] });
  });

  it("accepts the same flow as JSON", () => {
    const def = parseFlowDefinition(JSON.stringify({ id: "j", steps: [{ id: "a", handler: "echo" }] }));
    expect(def.steps[0]).toMatchObject({ id: "a", handler: "echo", input: {}, onFailure: "fail" });
  });

  it("keeps a numeric author version as a label string", () => {
    expect(parseFlowDefinition("id: v\nversion: 3\nsteps: [{id: a, handler: echo}]").version).toBe("3");
  });

  it.each(["id: [unclosed", "steps:\n  - id: a\n   handler: echo", "{"])("invalid YAML %j → INVALID_FLOW", (text) => {
    const err = flowError(() => parseFlowDefinition(text, "bad.yaml"));
    expect(err.message).toContain("bad.yaml");
    expect(err.message).toMatch(/not valid YAML\/JSON/);
  });

  it.each<[string, string, RegExp]>([
    ["missing id", "steps: [{id: a, handler: echo}]", /(^|: )id: /],
    ["empty steps", "id: f\nsteps: []", /steps: /],
    ["bad step id", "id: f\nsteps: [{id: 'a.b', handler: echo}]", /steps\.0\.id: /],
    ["missing handler", "id: f\nsteps: [{id: a}]", /steps\.0\.handler: /],
    ["unknown step field", "id: f\nsteps: [{id: a, handler: echo, retries: 3}]", /steps\.0: .*retries/],
    ["unknown flow field", "id: f\nowner: me\nsteps: [{id: a, handler: echo}]", /owner/],
    ["bad retry backoff", "id: f\nsteps: [{id: a, handler: echo, retry: {backoff: linear}}]", /steps\.0\.retry\.backoff: /],
    ["zero maxAttempts", "id: f\nsteps: [{id: a, handler: echo, retry: {maxAttempts: 0}}]", /steps\.0\.retry\.maxAttempts: /],
    ["negative timeout", "id: f\nsteps: [{id: a, handler: echo, timeoutMs: -5}]", /steps\.0\.timeoutMs: /],
    ["when without {% %}", "id: f\nsteps: [{id: a, handler: echo, when: 'x = 1'}]", /steps\.0\.when: /],
    ["bad priority", "id: f\nsteps: [{id: a, handler: echo, priority: urgent}]", /steps\.0\.priority: /],
    ["bad onFailure", "id: f\nsteps: [{id: a, handler: echo, onFailure: ignore}]", /steps\.0\.onFailure: /],
    ["a YAML scalar", "just a string", /\(root\): /],
  ])("%s → INVALID_FLOW naming the field", (_name, text, field) => {
    const err = flowError(() => parseFlowDefinition(text, "f.yaml"));
    expect(err.message).toMatch(/^f\.yaml: /);
    expect(err.message).toMatch(field);
  });

  it("graph errors surface through parseFlowDefinition", () => {
    const text = "id: f\nsteps:\n  - {id: a, handler: echo, dependsOn: [b]}\n  - {id: b, handler: echo, dependsOn: [a]}";
    expect(flowError(() => parseFlowDefinition(text)).message).toMatch(/cycle: a -> b -> a/);
    expect(flowError(() => parseFlowDefinition("id: f\nsteps: [{id: a, handler: echo, dependsOn: [zz]}]")).message).toMatch(
      /unknown step "zz"/,
    );
  });
});
