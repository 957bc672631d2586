import { z } from "zod";

/**
 * What `Task.contextRef` points at when the engine offloaded a large context: one entry per
 * top-level key of the context. A small key is kept inline here; a larger one is its own gzip'd
 * blob (JSON of that key's value), so a handler reading `a.b` fetches only key `a`.
 */
export const ContextManifestEntry = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("inline"), value: z.unknown() }),
  z.object({
    kind: z.literal("blob"),
    /** Object name in the same bucket as the manifest: `context/<executionId>/<sha256 of the value's JSON>`. */
    name: z.string().min(1),
    /** Size of the value's JSON before gzip. */
    bytes: z.number().int().nonnegative(),
  }),
]);
export type ContextManifestEntry = z.infer<typeof ContextManifestEntry>;

export const ContextManifest = z.object({
  version: z.literal(1),
  /** Size of the whole context's JSON, inline. */
  bytes: z.number().int().nonnegative(),
  keys: z.record(z.string(), ContextManifestEntry),
});
export type ContextManifest = z.infer<typeof ContextManifest>;
