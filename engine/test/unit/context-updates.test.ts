import { afterEach, describe, expect, it } from "vitest";
import type { ContextUpdate } from "@flowmonkey/shared";
import { applyContextUpdates } from "../../src/execution/context-updates.js";

afterEach(() => {
  // Whatever a test did, no plain object may have grown a property through its prototype.
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.prototype).not.toHaveProperty("polluted");
});

describe("applyContextUpdates", () => {
  it.each<[string, Record<string, unknown>, ContextUpdate[], Record<string, unknown>]>([
    ["set a top-level key", {}, [{ op: "set", path: "a", value: 1 }], { a: 1 }],
    ["set a nested path, creating parents", {}, [{ op: "set", path: "a.b.c", value: "x" }], { a: { b: { c: "x" } } }],
    ["set keeps siblings", { a: { b: 1, keep: true } }, [{ op: "set", path: "a.b", value: 2 }], { a: { b: 2, keep: true } }],
    ["set replaces a scalar parent with an object", { a: 5 }, [{ op: "set", path: "a.b", value: 1 }], { a: { b: 1 } }],
    ["set stores objects and null as given", {}, [{ op: "set", path: "a", value: { n: null } }], { a: { n: null } }],
    ["merge at the root", { a: 1, b: 1 }, [{ op: "merge", value: { b: 2, c: 3 } }], { a: 1, b: 2, c: 3 }],
    ["merge at a path", { a: { x: 1, y: 1 } }, [{ op: "merge", path: "a", value: { y: 2 } }], { a: { x: 1, y: 2 } }],
    ["merge at a nested path, creating parents", {}, [{ op: "merge", path: "a.b", value: { c: 1 } }], { a: { b: { c: 1 } } }],
    ["merge is shallow", { a: { x: { deep: 1 } } }, [{ op: "merge", path: "a", value: { x: { other: 2 } } }], { a: { x: { other: 2 } } }],
    ["merge onto a non-object replaces it", { a: [1, 2] }, [{ op: "merge", path: "a", value: { b: 1 } }], { a: { b: 1 } }],
    ["delete a key", { a: 1, b: 2 }, [{ op: "delete", path: "a" }], { b: 2 }],
    ["delete a nested key", { a: { b: 1, c: 2 } }, [{ op: "delete", path: "a.b" }], { a: { c: 2 } }],
    ["delete a missing key is a no-op", { a: 1 }, [{ op: "delete", path: "x" }], { a: 1 }],
    [
      "updates apply in order",
      {},
      [
        { op: "set", path: "a", value: 1 },
        { op: "merge", value: { b: 2 } },
        { op: "delete", path: "a" },
        { op: "set", path: "b", value: 3 },
      ],
      { b: 3 },
    ],
    ["no updates: an equal copy", { a: { b: [1, 2] } }, [], { a: { b: [1, 2] } }],
  ])("%s", (_name, context, updates, expected) => {
    expect(applyContextUpdates(context, updates)).toEqual(expected);
  });

  it("does not mutate its input, at any depth", () => {
    const context = { a: { b: { c: 1 } }, list: [1, 2] };
    const snapshot = structuredClone(context);
    const out = applyContextUpdates(context, [
      { op: "set", path: "a.b.c", value: 2 },
      { op: "merge", path: "a.b", value: { d: 3 } },
      { op: "delete", path: "list" },
    ]);
    expect(context).toEqual(snapshot);
    expect(out).toEqual({ a: { b: { c: 2, d: 3 } } });
    expect(out.a).not.toBe(context.a);
  });

  it("does not share the values it was given with the output", () => {
    const context = { a: { b: 1 } };
    const out = applyContextUpdates(context, []);
    (out.a as Record<string, unknown>).b = 2;
    expect(context.a.b).toBe(1);
  });

  describe("refuses paths that reach a prototype", () => {
    it.each([
      "__proto__",
      "__proto__.polluted",
      "a.__proto__.polluted",
      "constructor.prototype.polluted",
      "a.constructor.prototype.polluted",
      "prototype",
    ])("set %j", (path) => {
      expect(() => applyContextUpdates({ a: {} }, [{ op: "set", path, value: "yes" }])).toThrow(/not allowed/);
    });

    it.each(["__proto__", "constructor.prototype", "a.__proto__"])("merge at %j", (path) => {
      expect(() => applyContextUpdates({ a: {} }, [{ op: "merge", path, value: { polluted: "yes" } }])).toThrow(/not allowed/);
    });

    it.each(["__proto__", "constructor"])("delete %j", (path) => {
      expect(() => applyContextUpdates({}, [{ op: "delete", path }])).toThrow(/not allowed/);
    });

    it("a merge value carrying __proto__ (as JSON.parse produces it)", () => {
      const value = JSON.parse('{"__proto__": {"polluted": "yes"}}') as Record<string, unknown>;
      expect(() => applyContextUpdates({}, [{ op: "merge", value }])).toThrow(/forbidden key/);
      expect(() => applyContextUpdates({ a: {} }, [{ op: "merge", path: "a", value }])).toThrow(/forbidden key/);
    });

    it("a merge value carrying constructor", () => {
      expect(() => applyContextUpdates({}, [{ op: "merge", value: { constructor: { prototype: { polluted: 1 } } } }])).toThrow(
        /forbidden key/,
      );
    });

    it("a set value that contains __proto__ is stored as data, not as a prototype", () => {
      const value = JSON.parse('{"__proto__": {"polluted": "yes"}}') as unknown;
      const out = applyContextUpdates({}, [{ op: "set", path: "a", value }]);
      expect(Object.getPrototypeOf(out.a)).toBe(Object.prototype);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});
