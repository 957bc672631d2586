import { createHash } from "node:crypto";
import { encode } from "../protocol/codec.js";
import type { JsonObject } from "../protocol/messages/common.js";
import type { ContextManifest, ContextManifestEntry } from "../protocol/messages/context-manifest.js";
import { BLOB_NAMES } from "../protocol/names.js";

/** One top-level key of a context with its value's JSON. */
export interface EncodedKey {
  key: string;
  value: unknown;
  json: Uint8Array;
}

export interface EncodedContext {
  keys: EncodedKey[];
  /** Bytes of the whole context's JSON: what carrying it inline costs (equals `encode(context).byteLength`). */
  bytes: number;
}

/** A blob to store: its content-addressed name and the JSON to gzip. */
export interface ContextBlob {
  name: string;
  json: Uint8Array;
}

export interface SplitContext {
  manifest: ContextManifest;
  /** Stored after the key blobs, so that a stored manifest implies that its key blobs are there. */
  manifestBlob: ContextBlob;
  /** One per distinct value (two keys with equal values share a blob). */
  keyBlobs: ContextBlob[];
}

export interface SplitOptions {
  executionId: string;
  /** A key whose JSON is at most this stays inline in the manifest (no fetch of its own). */
  inlineKeyMaxBytes: number;
  /** ...as long as the manifest's inline values stay under this in total. */
  inlineTotalMaxBytes: number;
}

const utf8 = new TextEncoder();
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * Encodes each top-level key once. The total is computed from the parts (braces, quoted keys,
 * colons, commas), so deciding whether to offload costs no second serialization.
 */
export function encodeContextKeys(context: JsonObject): EncodedContext {
  const keys: EncodedKey[] = [];
  let bytes = 2;
  for (const [key, value] of Object.entries(context)) {
    const text = JSON.stringify(value);
    // JSON.stringify leaves out undefined (and functions) in objects: so does the context.
    if (text === undefined) continue;
    const json = utf8.encode(text);
    bytes += (keys.length > 0 ? 1 : 0) + utf8Bytes(JSON.stringify(key)) + 1 + json.byteLength;
    keys.push({ key, value, json });
  }
  return { keys, bytes };
}

/**
 * Splits an encoded context into a manifest and one blob per large key, every name the sha256
 * of its content under the execution's prefix: the same context gives the same names, so
 * every task of an execution whose context did not change shares them, and a blob stored by
 * a transaction that then rolled back is a harmless orphan of its execution.
 */
export function splitContext(encoded: EncodedContext, options: SplitOptions): SplitContext {
  const keys: Record<string, ContextManifestEntry> = {};
  const blobs = new Map<string, ContextBlob>();
  let inlineTotal = 0;
  // Smallest first, so the inline budget keeps as many keys fetch-free as it can.
  const bySize = [...encoded.keys].sort((a, b) => a.json.byteLength - b.json.byteLength);
  const entries = new Map<string, ContextManifestEntry>();
  for (const { key, value, json } of bySize) {
    if (json.byteLength <= options.inlineKeyMaxBytes && inlineTotal + json.byteLength <= options.inlineTotalMaxBytes) {
      inlineTotal += json.byteLength;
      entries.set(key, { kind: "inline", value });
      continue;
    }
    const name = BLOB_NAMES.context(options.executionId, sha256(json));
    blobs.set(name, { name, json });
    entries.set(key, { kind: "blob", name, bytes: json.byteLength });
  }
  // The manifest lists keys in the context's own order (its name must not depend on sort ties).
  for (const { key } of encoded.keys) {
    // defineProperty: a key named "__proto__" stays an own key instead of replacing the prototype.
    Object.defineProperty(keys, key, { value: entries.get(key)!, enumerable: true, writable: true, configurable: true });
  }
  const manifest: ContextManifest = { version: 1, bytes: encoded.bytes, keys };
  const json = encode(manifest);
  return { manifest, manifestBlob: { name: BLOB_NAMES.context(options.executionId, sha256(json)), json }, keyBlobs: [...blobs.values()] };
}
