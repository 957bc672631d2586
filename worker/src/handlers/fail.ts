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
      code: z.string().min(1).max(128).default("HANDLER_FAILED").describe("the failure's error code"),
      message: z.string().max(16_384).default("failed on purpose (fail handler)").describe("the failure's message"),
      retryable: z.boolean().default(false).describe("whether the step's retry policy may run it again"),
      retryAfterMs: z.number().int().nonnegative().optional().describe("the earliest retry, in milliseconds (a retryable failure only)"),
      details: z.unknown().optional().describe("any JSON, kept with the error"),
    }),
  ),
  docs: {
    summary: "Always fails, the way its input says: for trying retries, `onFailure` and dead letters in a flow.",
    output: "none: the step fails with `{code, message, retryable, details}`",
    example: {
      input: { code: "CARD_DECLINED", message: "the bank said no" },
      output: { error: { code: "CARD_DECLINED", message: "the bank said no", retryable: false } },
    },
  },
  execute(ctx): never {
    const { code, message, retryable, retryAfterMs, details } = ctx.input;
    const Failure = retryable ? RetryableFailure : NonRetryableFailure;
    throw new Failure(code, message, { retryAfterMs, details });
  },
});
