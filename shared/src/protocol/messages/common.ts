import { z } from "zod";

export const JsonObject = z.record(z.string(), z.unknown());
export type JsonObject = z.infer<typeof JsonObject>;

/** ISO-8601 timestamp with offset, as produced by Date.prototype.toISOString(). */
export const Timestamp = z.iso.datetime({ offset: true });

/** Where a large value lives in the Object Store bucket instead of inside the message. */
export const BlobRef = z.object({
  bucket: z.string().min(1),
  name: z.string().min(1),
  size: z.number().int().nonnegative(),
  encoding: z.enum(["gzip", "identity"]),
  digest: z.string().optional(),
});
export type BlobRef = z.infer<typeof BlobRef>;

export const Failure = z.object({
  code: z.string().min(1).max(128),
  message: z.string().max(16_384),
  retryable: z.boolean(),
  retryAfterMs: z.number().int().nonnegative().optional(),
  details: z.unknown().optional(),
});
export type Failure = z.infer<typeof Failure>;
