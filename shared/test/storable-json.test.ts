import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { decode, excerpt } from "../src/protocol/codec.js";
import { assertStorable, findUnstorable, MAX_JSON_DEPTH, storableText } from "../src/protocol/storable-json.js";
import { FmError } from "../src/errors/fm-error.js";

const nested = (depth: number): unknown => {
  let v: unknown = "leaf";
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};
const bytes = (text: string) => new TextEncoder().encode(text);

describe("findUnstorable", () => {
  it.each([
    ["NUL in a string", { input: { s: "a\u0000b" } }, "input.s", /\\u0000/],
    ["NUL in a key", { input: { "k\u0000": 1 } }, "input", /key .*\\u0000/],
    ["a lone high surrogate", { s: ["ok", "x\ud800"] }, "s[1]", /unpaired .*\\ud800/],
    ["a lone low surrogate", { s: "\udc00y" }, "s", /unpaired .*\\udc00/],
    ["a reversed pair", { s: "\udc00\ud800" }, "s", /unpaired/],
    ["odd keys in the path", { "a b": { "c\ud800": 0 } }, '["a b"]', /key/],
    ["a bare NUL string", "\u0000", "(root)", /\\u0000/],
  ])("finds %s", (_name, value, path, problem) => {
    const spot = findUnstorable(value);
    expect(spot?.path).toBe(path);
    expect(spot?.problem).toMatch(problem);
  });

  it.each([
    ["plain values", { a: [1, "two", null, true, { b: "ü €" }] }],
    ["a surrogate pair (emoji)", { s: "\ud83d\ude00 ok" }],
    ["nesting at the limit", nested(MAX_JSON_DEPTH)],
    ["scalars", 42],
  ])("lets %s through", (_name, value) => {
    expect(findUnstorable(value)).toBeUndefined();
  });

  it("bounds nesting without overflowing the stack, however deep", () => {
    expect(findUnstorable(nested(MAX_JSON_DEPTH + 1))?.problem).toMatch(/deeper than 128/);
    const deep = JSON.parse("[".repeat(200_000) + "]".repeat(200_000)) as unknown;
    expect(findUnstorable(deep)?.problem).toMatch(/deeper than/);
  });

  it("agrees with the rule for any JSON-like value (property)", () => {
    // String.prototype.isWellFormed (Node 20) is not in the ES2023 lib this project compiles against.
    const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
    const bad = (s: string) => s.includes("\u0000") || !wellFormed(s);
    const anyBad = (v: unknown, depth: number): boolean => {
      if (typeof v === "string") return bad(v);
      if (typeof v !== "object" || v === null) return false;
      if (depth >= MAX_JSON_DEPTH) return true;
      return Object.entries(v).some(([k, x]) => bad(k) || anyBad(x, depth + 1));
    };
    const text = fc.string({ unit: fc.oneof(fc.constantFrom("\u0000", "\ud800", "\udc00", "\ud83d\ude00"), fc.string({ unit: "binary", maxLength: 1 })) });
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }).chain((v) => fc.tuple(fc.constant(v), text)), ([v, s]) => {
        const value = { v, s, [s]: v };
        expect(findUnstorable(value) !== undefined).toBe(anyBad(value, 0));
      }),
      { numRuns: 500 },
    );
  });
});

describe("storableText", () => {
  it("escapes NUL and replaces lone surrogates, keeping pairs and plain text", () => {
    expect(storableText("a\u0000b")).toBe("a\\u0000b");
    expect(storableText("x\ud800y\udc00")).toBe("x\ufffdy\ufffd");
    expect(storableText("\ud83d\ude00")).toBe("\ud83d\ude00");
    expect(storableText("plain")).toBe("plain");
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(findUnstorable(storableText(s))).toBeUndefined();
      }),
    );
  });
});

describe("decode refuses what PostgreSQL cannot store", () => {
  const schema = z.object({ input: z.unknown() });
  it.each([
    ['{"input":{"s":"a\\u0000b"}}', /input\.s contains \\u0000/],
    ['{"input":{"s":"\\ud800"}}', /input\.s contains an unpaired/],
    [`{"input":${"[".repeat(6000)}${"]".repeat(6000)}}`, /deeper than 128 levels/],
  ])("%# as UNSUPPORTED_JSON (400, not retryable)", (body, message) => {
    const err = (() => {
      try {
        decode(bytes(body), schema, { what: "start", forStorage: true });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FmError);
    expect((err as FmError).code).toBe("UNSUPPORTED_JSON");
    expect((err as FmError).httpStatus).toBe(400);
    expect((err as FmError).retryable).toBe(false);
    expect((err as FmError).message).toMatch(message);
    // The message is itself storable (it goes into a rejection row).
    expect(findUnstorable((err as FmError).message)).toBeUndefined();
  });

  it("checks only when the value is going to be stored (forStorage)", () => {
    expect(decode(bytes('{"input":"\\u0000"}'), schema)).toEqual({ input: "\u0000" });
  });

  it("assertStorable names what was checked", () => {
    expect(() => assertStorable({ output: "\u0000" }, "handler result")).toThrow(/handler result: output contains/);
  });

  it("excerpts are storable even from raw NUL bytes and split surrogate pairs", () => {
    expect(excerpt(new Uint8Array([0x7b, 0x00, 0x7d]))).toBe("{\\u0000}");
    const emoji = "\ud83d\ude00".repeat(10);
    expect(findUnstorable(excerpt(bytes(emoji), 5))).toBeUndefined();
  });
});
