import { ContextManifest, decode, FmError, JsonObject, onceUntilFailure, type BlobRef, type BlobStore } from "@flowmonkey/shared";
import { z } from "zod";

/**
 * Where a task's context comes from, one top-level key at a time: the task itself (small
 * contexts), or the blob bucket (a `contextRef`: a manifest, then one blob per large key).
 */
export interface ContextSource {
  /** The context's top-level keys. */
  keys(): Promise<readonly string[]>;
  /**
   * One key's value, undefined when the context has no such key. `owned`: a copy nobody else
   * holds, which the caller may change in place (values decoded from a blob are).
   */
  load(key: string): Promise<{ value: unknown; owned: boolean }>;
}

/** The context carried in the task message. Its values are shared with the task: not owned. */
export function inlineContextSource(context: JsonObject): ContextSource {
  return {
    keys: () => Promise.resolve(Object.keys(context)),
    load: (key) => Promise.resolve({ value: Object.hasOwn(context, key) ? context[key] : undefined, owned: false }),
  };
}

/**
 * A context the engine offloaded: the manifest is fetched on first use, a key's blob only
 * when that key is read. Each is fetched at most once (the caller caches values too); a
 * failed fetch is not remembered, so a later read tries again.
 */
export function offloadedContextSource(blobs: BlobStore, ref: BlobRef): ContextSource {
  const readManifest = onceUntilFailure(() => fetchJson(blobs, ref.name, ContextManifest, ref.size, "context manifest"));
  return {
    async keys() {
      return Object.keys((await readManifest()).keys);
    },
    async load(key) {
      const { keys } = await readManifest();
      const entry = Object.hasOwn(keys, key) ? keys[key] : undefined;
      if (!entry) return { value: undefined, owned: true };
      if (entry.kind === "inline") return { value: entry.value, owned: true };
      return { value: await fetchJson(blobs, entry.name, z.unknown(), entry.bytes, `context key ${JSON.stringify(key)}`), owned: true };
    },
  };
}

/** One blob's JSON, no larger than the size its reference announced (a corrupt blob cannot exhaust memory). */
async function fetchJson<S extends z.ZodType>(blobs: BlobStore, name: string, schema: S, bytes: number, what: string): Promise<z.output<S>> {
  const data = await blobs.get(name, { maxBytes: bytes });
  // Content-addressed and written once: a missing blob was deleted under a running execution.
  if (!data) throw new FmError("INTERNAL", `${what} is missing from the blob bucket ${blobs.bucket} (${name})`);
  return decode(data, schema, { maxBytes: bytes, what: `${what} (${name})` });
}
