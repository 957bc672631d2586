import jsonata from "jsonata";
import { afterAll, describe, expect, it } from "vitest";
// The built package: the pool forks dist/expressions/evaluator-process.js beside its own module.
import { ExpressionPool, isTriviallySafe, mergeScopeNeeds, pruneScope, resolveExpressionBounds, scopeNeeds } from "@flowmonkey/shared";

/** Catastrophic backtracking: each extra `a` doubles the work; 34 would take minutes unbounded. */
const REGEX_BOMB = `$replace("${"a".repeat(34)}!", /(a+)+$/, "x")`;

/** Counts event-loop turns while `work` runs: a stalled loop counts none. */
async function ticksDuring<T>(work: Promise<T>): Promise<{ result: T; ticks: number }> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 50);
  try {
    return { result: await work, ticks };
  } finally {
    clearInterval(timer);
  }
}

describe("isTriviallySafe: what may be evaluated in the caller's thread", () => {
  it.each([
    "input",
    "input.order.id",
    "steps.`my step`.status",
    "$.input",
    "'text'",
    "42",
    "true",
    "null",
    "steps.charge.status = 200",
    "steps.a.ok and input.flag or context.x != 'y'",
  ])("%s is", (expression) => {
    expect(isTriviallySafe(jsonata(expression).ast())).toBe(true);
  });

  it.each([
    REGEX_BOMB,
    '$pad("x", 500000000)',
    "input.items[0]",
    "input.items[price > 2]",
    "input.a & input.b",
    "input.n + 1",
    "input.items.$string()",
    "$count(input.items)",
    "($f := function($n){ $f($n + 1) }; $f(0))",
    "{'a': input.a}",
    "[input.a]",
    "input.a ? 1 : 2",
    "$x",
    "input.a.b^(c)",
    "input{a: b}",
    "input.**",
    "input.*",
    "input in [1,2]",
    "[1..10000000]",
    "input ~> $string",
  ])("%s is not", (expression) => {
    expect(isTriviallySafe(jsonata(expression).ast())).toBe(false);
  });
});

describe("ExpressionPool", () => {
  const pool = new ExpressionPool({ timeoutMs: 1000, memoryMb: 64, processes: 2 });
  afterAll(() => pool.close());

  it("evaluates several expressions over one data, in order", async () => {
    await expect(pool.evaluate(["input.a + 1", "'x' & input.b", "nothing.here"], { input: { a: 1, b: "y" } })).resolves.toEqual({
      ok: true,
      values: [2, "xy", null],
    });
  });

  it("names the expression that failed, and why", async () => {
    const outcome = await pool.evaluate(["1", "$number('abc')"], {});
    expect(outcome).toMatchObject({ ok: false, index: 1, reason: "evaluate", message: expect.stringContaining("D3030") });
    expect(await pool.evaluate(["1 +"], {})).toMatchObject({ ok: false, index: 0, reason: "parse" });
  });

  it("kills a regex bomb at the time limit, keeps this event loop turning, and serves other evaluations meanwhile", async () => {
    const killedBefore = pool.stats().killed;
    const bomb = pool.evaluate([REGEX_BOMB], {});
    const others = Promise.all(Array.from({ length: 20 }, (_, i) => pool.evaluate(["$sum(input)"], { input: [i, 1] })));
    const { result, ticks } = await ticksDuring(bomb);
    expect(result).toMatchObject({ ok: false, index: -1, reason: "time-limit", message: "exceeded the 1000 ms time limit" });
    // ~1.1 s of 50 ms ticks; a blocked loop would count none.
    expect(ticks).toBeGreaterThanOrEqual(5);
    const values = (await others).map((o) => (o.ok ? o.values[0] : o));
    expect(values).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(pool.stats().killed).toBe(killedBefore + 1);
    // The killed process is replaced: the pool is back to full strength and answers.
    await expect(pool.evaluate(["1 + 1"], {})).resolves.toEqual({ ok: true, values: [2] });
    expect(pool.stats().processes).toBe(2);
  });

  it("refuses a giant $pad result without materializing it, and this process's memory does not balloon", async () => {
    const rssBefore = process.memoryUsage().rss;
    const outcome = await pool.evaluate(['$pad("x", 500000000)'], {});
    expect(outcome).toMatchObject({ ok: false, reason: "result", message: expect.stringContaining("larger than the") });
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
  });

  it("a string operation past the memory limit kills only its evaluator process", async () => {
    // A long time limit, so that on a loaded machine the memory limit is surely the one hit.
    const roomy = new ExpressionPool({ timeoutMs: 30_000, memoryMb: 64, processes: 1 });
    try {
      const rssBefore = process.memoryUsage().rss;
      const outcome = await roomy.evaluate(['$uppercase($pad("x", 500000000))'], {});
      expect(outcome).toMatchObject({ ok: false, index: -1, reason: "memory-limit", message: "exceeded the 64 MB memory limit" });
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
      await expect(roomy.evaluate(["'still' & ' here'"], {})).resolves.toEqual({ ok: true, values: ["still here"] });
    } finally {
      await roomy.close();
    }
  }, 60_000);

  it.each([
    ["unbounded recursion", "($f := function($n){ $f($n + 1) }; $f(0))"],
    ["deep recursion", "($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))"],
    ["$join of a huge array", '$join([1..10000000].$string(), ",")'],
    ["string doubling in a loop", '$reduce([1..40], function($acc, $v){ $acc & $acc }, "x")'],
    ["a huge range mapped", "$count([1..10000000].{'n': $})"],
  ])("%s is stopped with a limit error", async (_what, expression) => {
    const outcome = await pool.evaluate([expression], {});
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? "" : outcome.message).toMatch(/exceeded the .* limit|larger than the|hit a limit/);
  });

  it("a closed pool refuses work", async () => {
    const closing = new ExpressionPool({ processes: 1 });
    await closing.close();
    await expect(closing.evaluate(["1"], {})).rejects.toThrow(/closed/);
  });
});

describe("resolveExpressionBounds", () => {
  it("fills defaults and names a bad bound", () => {
    expect(resolveExpressionBounds({ timeoutMs: 250 })).toMatchObject({ timeoutMs: 250, memoryMb: 128, processes: 2 });
    expect(() => resolveExpressionBounds({ processes: 0 })).toThrow(/processes/);
    expect(() => resolveExpressionBounds({ memoryMb: 8 })).toThrow(/memoryMb/);
  });
});

describe("scopeNeeds / pruneScope: only what an expression can observe is copied", () => {
  const scope = {
    input: { order: { id: "A1" } },
    context: { tenant: "acme" },
    steps: { charge: { id: "ch_1", status: 200 }, big: { blob: "x".repeat(1000) }, other: 1 },
    execution: { id: "e", flowId: "f" },
  };
  const needsOf = (e: string) => scopeNeeds(jsonata(e).ast());

  it.each<[string, unknown]>([
    ["'paid ' & steps.charge.id", { steps: { charge: scope.steps.charge } }],
    ["steps.charge.status = 200 ? input.order.id : 'no'", { input: scope.input, steps: { charge: scope.steps.charge } }],
    ["$uppercase(context.tenant)", { context: scope.context }],
    ["$count(steps.other) + $count(steps.charge)", { steps: { charge: scope.steps.charge, other: 1 } }],
    ["'constant'", {}],
  ])("%s keeps only what it names", (expression, expected) => {
    expect(pruneScope(scope, needsOf(expression))).toEqual(expected);
  });

  it.each([
    ["$keys(steps)", { steps: scope.steps }],
    ["steps", { steps: scope.steps }],
    ["steps[0]", { steps: scope.steps }],
    ["$count(steps.charge) + $count(input.steps)", { steps: scope.steps, input: scope.input }],
  ])("%s keeps every step (steps is used as a whole)", (expression, expected) => {
    expect(pruneScope(scope, needsOf(expression))).toEqual(expected);
  });

  it.each(["$", "$$.input", "$keys($)", "input.*", "**.id", "steps.charge.%", "$eval('steps.big')", "$sift($, function($v){ true })"])(
    "%s keeps the whole scope",
    (expression) => {
      expect(pruneScope(scope, needsOf(expression))).toBe(scope);
    },
  );

  it("several expressions keep the union", () => {
    const needs = mergeScopeNeeds([needsOf("steps.charge.id"), needsOf("context.tenant")]);
    expect(pruneScope(scope, needs)).toEqual({ context: scope.context, steps: { charge: scope.steps.charge } });
    expect(pruneScope(scope, mergeScopeNeeds([needsOf("steps.charge.id"), needsOf("$")]))).toBe(scope);
  });

  it("pruned evaluation gives the same answers as the whole scope", async () => {
    const pool = new ExpressionPool({ processes: 1 });
    try {
      for (const e of ["'paid ' & steps.charge.id", "$keys(steps)", "$count(steps.*)", "steps.charge.%.other", "$string(input)", "execution.id & context.tenant"]) {
        const whole = await pool.evaluate([e], scope);
        const pruned = await pool.evaluate([e], pruneScope(scope, needsOf(e)));
        expect(pruned, e).toEqual(whole);
      }
    } finally {
      await pool.close();
    }
  });
});
