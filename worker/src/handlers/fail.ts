import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";
import { NonRetryableFailure, RetryableFailure } from "../sdk/failures.js";

/** Always fails, the way its input says: for testing retries and failure paths in flows. */
export const fail = defineHandler({
  type: "fail",
  version: "1",
  // No input at all means "fail with the defaults".
  input: z.preprocess(
    (value) => value ?? {},
    z.object({
      code: z.string().min(1).max(128).default("HANDLER_FAILED"),
      message: z.string().max(16_384).default("failed on purpose (fail handler)"),
      retryable: z.boolean().default(false),
      retryAfterMs: z.number().int().nonnegative().optional(),
      details: z.unknown().optional(),
    }),
  ),
  execute(ctx): never {
    const { code, message, retryable, retryAfterMs, details } = ctx.input;
    const Failure = retryable ? RetryableFailure : NonRetryableFailure;
    throw new Failure(code, message, { retryAfterMs, details });
  },
});
