import { describe, expect, it } from "vitest";
import { createExecutionCache } from "../../src/store/execution-cache.js";
import type { ExecutionState } from "../../src/scheduler/state.js";

const state = (id: string, status: ExecutionState["status"] = "running") => ({ id, status }) as ExecutionState;

describe("execution cache", () => {
  it("hands a state to one taker at a time, with its version", () => {
    const cache = createExecutionCache();
    cache.put(state("e1"), "100", 10);
    const first = cache.take(["e1", "e2"]);
    expect([...first.states.keys()]).toEqual(["e1"]);
    expect(first.versions.get("e1")).toBe("100");
    expect(cache.take(["e1"]).states.size).toBe(0);
  });

  it("keeps no ended execution, and forgets evicted ones", () => {
    const cache = createExecutionCache();
    cache.put(state("done", "completed"), "1", 10);
    cache.put(state("e1"), "2", 10);
    cache.evict(["e1"]);
    expect(cache.size).toBe(0);
  });

  it("drops the least recently committed past its size", () => {
    const cache = createExecutionCache({ maxEntries: 2 });
    cache.put(state("a"), "1", 10);
    cache.put(state("b"), "1", 10);
    cache.put(state("a"), "2", 10);
    cache.put(state("c"), "1", 10);
    expect([...cache.take(["a", "b", "c"]).states.keys()].sort()).toEqual(["a", "c"]);
  });

  it("keeps no state whose row is too large, and no more than its total size", () => {
    const cache = createExecutionCache({ maxEntrySize: 100, maxTotalSize: 250 });
    cache.put(state("huge"), "1", 101);
    expect(cache.size).toBe(0);
    cache.put(state("a"), "1", 100);
    cache.put(state("b"), "1", 100);
    cache.put(state("c"), "1", 100);
    expect(cache.totalSize).toBe(200);
    expect([...cache.take(["a", "b", "c"]).states.keys()].sort()).toEqual(["b", "c"]);
    expect(cache.totalSize).toBe(0);
  });

  it("counts an execution's input and labels, which updates do not rewrite", () => {
    const cache = createExecutionCache({ maxEntrySize: 100 });
    const big = { ...state("big"), input: { text: "x".repeat(200) } } as ExecutionState;
    cache.put(big, "1", 10);
    expect(cache.size).toBe(0);
    cache.put({ ...state("small"), input: { n: 1 }, labels: { a: "b" } } as ExecutionState, "1", 10);
    expect(cache.totalSize).toBe(10 + JSON.stringify({ n: 1 }).length + JSON.stringify({ a: "b" }).length);
  });

  it("says when another batch holds an execution it is asked for, until that batch releases it", () => {
    const cache = createExecutionCache();
    cache.put(state("a"), "1", 10);
    const first = cache.take(["a"]);
    expect(first.contended).toBe(false);
    const second = cache.take(["a", "b"]);
    expect(second.contended).toBe(true);
    expect(second.states.size).toBe(0);
    cache.release(["a"]);
    cache.release(["a", "b"]);
    expect(cache.take(["a"]).contended).toBe(false);
  });

  it("stands aside while most of its hits are stale, then tries again", () => {
    const cache = createExecutionCache({ window: 10, maxStaleShare: 0.5, standAside: 3 });
    cache.put(state("a"), "1", 10);
    cache.settle(4, false);
    cache.settle(6, true);
    expect(cache.size).toBe(0);
    cache.put(state("a"), "2", 10);
    for (let i = 0; i < 3; i++) expect(cache.take(["a"]).states.size).toBe(0);
    expect(cache.take(["a"]).states.size).toBe(1);
  });

  it("keeps serving while its hits are mostly fresh", () => {
    const cache = createExecutionCache({ window: 10, maxStaleShare: 0.5 });
    cache.settle(8, false);
    cache.settle(2, true);
    cache.put(state("a"), "1", 10);
    expect(cache.take(["a"]).states.size).toBe(1);
  });
});
