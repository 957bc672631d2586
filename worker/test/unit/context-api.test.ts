import { describe, expect, it } from "vitest";
import { createContextRecorder } from "../../src/plumbing/context-api.js";
import { inlineContextSource, type ContextSource } from "../../src/plumbing/context-source.js";

/** A stored context whose loads are counted, as the blob-backed source would fetch them. */
function countingSource(context: Record<string, unknown>, fail: ReadonlySet<string> = new Set()) {
  const loads: string[] = [];
  const source: ContextSource = {
    keys: () => Promise.resolve(Object.keys(context)),
    async load(key) {
      loads.push(key);
      if (fail.has(key)) throw new Error(`blob of ${key} is gone`);
      return { value: Object.hasOwn(context, key) ? structuredClone(context[key]) : undefined, owned: true };
    },
  };
  return { source, loads };
}

describe("the context recorder", () => {
  it("loads only the top-level key a path reads, once per task", async () => {
    const { source, loads } = countingSource({ a: { b: 1, c: 2 }, big: "x".repeat(1000) });
    const { api } = createContextRecorder(source);
    expect(await api.get("a.b")).toBe(1);
    expect(await api.get("a.c")).toBe(2);
    expect(await api.get("a.missing")).toBeUndefined();
    expect(loads).toEqual(["a"]);
    expect(await api.get()).toEqual({ a: { b: 1, c: 2 }, big: "x".repeat(1000) });
    expect(loads).toEqual(["a", "big"]);
  });

  it("writes need no load; a write below an unloaded key is replayed on it when it is read", async () => {
    const stored = { a: { keep: 1, old: 2 }, b: 1 };
    const { source, loads } = countingSource(stored);
    const recorder = createContextRecorder(source);
    const { api } = recorder;
    api.set("a.new", 3);
    api.delete("a.old");
    api.merge("a", { merged: true });
    api.set("b", 2);
    api.merge({ c: { x: 1 } });
    expect(loads).toEqual([]);
    expect(await api.get("b")).toBe(2);
    expect(await api.get("c.x")).toBe(1);
    expect(loads).toEqual([]);
    expect(await api.get("a")).toEqual({ keep: 1, new: 3, merged: true });
    expect(loads).toEqual(["a"]);
    // What the handler sees is what the engine will compute from the recorded updates.
    expect(await api.get()).toEqual({ a: { keep: 1, new: 3, merged: true }, b: 2, c: { x: 1 } });
    expect(recorder.updates()).toEqual([
      { op: "set", path: "a.new", value: 3 },
      { op: "delete", path: "a.old" },
      { op: "merge", path: "a", value: { merged: true } },
      { op: "set", path: "b", value: 2 },
      { op: "merge", value: { c: { x: 1 } } },
    ]);
  });

  it("a write while the key is loading is not lost", async () => {
    const { source } = countingSource({ a: { x: 1 } });
    const { api } = createContextRecorder(source);
    const reading = api.get("a");
    api.set("a.y", 2);
    await reading;
    expect(await api.get("a")).toEqual({ x: 1, y: 2 });
  });

  it("never changes the task's own (inline) context", async () => {
    const context = { order: { id: 7 } };
    const { api } = createContextRecorder(inlineContextSource(context));
    expect(await api.get("order.id")).toBe(7);
    api.set("order.status", "paid");
    expect(await api.get("order")).toEqual({ id: 7, status: "paid" });
    expect(context).toEqual({ order: { id: 7 } });
  });

  it("get rejects on a bad path or a failed load; getSafe gives the fallback instead", async () => {
    const { source, loads } = countingSource({ a: 1, gone: 2 }, new Set(["gone"]));
    const { api } = createContextRecorder(source);
    await expect(api.get("gone")).rejects.toThrow(/is gone/);
    await expect(api.get("a..b")).rejects.toThrow(TypeError);
    expect(await api.getSafe("gone", "fallback")).toBe("fallback");
    expect(await api.getSafe("__proto__.x", "fallback")).toBe("fallback");
    expect(await api.getSafe("missing", 0)).toBe(0);
    expect(await api.getSafe("missing")).toBeUndefined();
    expect(await api.getSafe("a", 0)).toBe(1);
    // A failed load is tried again by the next read.
    expect(loads.filter((k) => k === "gone")).toHaveLength(2);
  });
});
