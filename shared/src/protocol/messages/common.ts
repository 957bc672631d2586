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

/** A waiting step's resume token: printable, no whitespace (it travels in URLs and CLI args). */
export const ResumeToken = z.string().regex(/^[\x21-\x7e]{1,256}$/, "must be 1-256 printable characters without spaces");

/** Why a waiting step runs again, and with what: on the Task of the run after a wait. */
export const ResumeInfo = z.object({
  reason: z.enum(["token", "event", "timeout"]),
  /** The resume request's payload, or the event's data. */
  payload: z.unknown().optional(),
  /** The event that resumed it (reason "event"); `region`: the region whose worker emitted it (absent: a trusted publisher). */
  event: z
    .object({ name: z.string(), region: z.string().optional(), executionId: z.string().optional(), stepId: z.string().optional(), at: Timestamp.optional() })
    .optional(),
  /** How long the step waited (not billed as compute). */
  waitedMs: z.number().int().nonnegative(),
  /** Why it waited, as the handler said. */
  waitReason: z.string().optional(),
});
export type ResumeInfo = z.infer<typeof ResumeInfo>;
