import { describe, expect, it } from "vitest";
import { encodeContextKeys, splitContext } from "../src/context/split-context.js";
import { encode } from "../src/protocol/codec.js";
import { ContextManifest } from "../src/protocol/messages/context-manifest.js";

const options = { executionId: "e1", inlineKeyMaxBytes: 16, inlineTotalMaxBytes: 40 };

describe("encodeContextKeys", () => {
  it.each([
    {},
    { a: 1 },
    { a: "x", b: { c: [1, 2, null] }, "ä ü": "ümlaut", 'q"uote': true },
    { skipped: undefined, kept: 0 },
  ])("measures exactly what encoding the whole context costs: %j", (context) => {
    expect(encodeContextKeys(context).bytes).toBe(encode(context).byteLength);
  });

  it("leaves out undefined values, as JSON does", () => {
    expect(encodeContextKeys({ a: undefined, b: 2 }).keys.map((k) => k.key)).toEqual(["b"]);
  });
});

describe("splitContext", () => {
  const big = "x".repeat(100);
  const context = { small: 1, big, other: { big }, tiny: "t" };

  it("keeps small keys inline and gives each large value its own blob, named by its sha256 under the execution", () => {
    const split = splitContext(encodeContextKeys(context), options);
    expect(ContextManifest.parse(split.manifest)).toEqual(split.manifest);
    expect(Object.keys(split.manifest.keys)).toEqual(["small", "big", "other", "tiny"]);
    expect(split.manifest.keys.small).toEqual({ kind: "inline", value: 1 });
    expect(split.manifest.keys.tiny).toEqual({ kind: "inline", value: "t" });
    expect(split.manifest.keys.big).toMatchObject({ kind: "blob", bytes: encode(big).byteLength });
    expect(split.manifest.bytes).toBe(encode(context).byteLength);
    for (const blob of [...split.keyBlobs, split.manifestBlob]) expect(blob.name).toMatch(/^context\/e1\/[0-9a-f]{64}$/);
    expect(split.keyBlobs).toHaveLength(2);
    expect(new TextDecoder().decode(split.manifestBlob.json)).toBe(JSON.stringify(split.manifest));
  });

  it("gives the same names for the same content, and new ones for a changed key only", () => {
    const first = splitContext(encodeContextKeys(context), options);
    const again = splitContext(encodeContextKeys(structuredClone(context)), options);
    expect(again.manifestBlob.name).toBe(first.manifestBlob.name);
    expect(again.keyBlobs.map((b) => b.name)).toEqual(first.keyBlobs.map((b) => b.name));

    const changed = splitContext(encodeContextKeys({ ...context, other: { big, more: true } }), options);
    expect(changed.manifestBlob.name).not.toBe(first.manifestBlob.name);
    const names = new Set(first.keyBlobs.map((b) => b.name));
    expect(changed.keyBlobs.filter((b) => !names.has(b.name))).toHaveLength(1);
  });

  it("shares one blob between keys with equal values", () => {
    const split = splitContext(encodeContextKeys({ a: big, b: big }), options);
    expect(split.keyBlobs).toHaveLength(1);
    expect(split.manifest.keys.a).toEqual(split.manifest.keys.b);
  });

  it("stops inlining when the manifest's inline budget is spent (smallest keys first)", () => {
    const split = splitContext(encodeContextKeys({ a: "aaaaaaaaaaaa", b: "bbbbbbbbbbbb", c: "cc", d: "dddddddddddd" }), options);
    const kinds = Object.fromEntries(Object.entries(split.manifest.keys).map(([k, e]) => [k, e.kind]));
    // c (4 bytes) first, then two of the 14-byte ones fit in 40; the last does not.
    expect(kinds.c).toBe("inline");
    expect(Object.values(kinds).filter((k) => k === "blob")).toHaveLength(1);
  });

  it("keeps a key named __proto__ as an ordinary own key", () => {
    const context = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
    const split = splitContext(encodeContextKeys(context), options);
    expect(Object.hasOwn(split.manifest.keys, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
