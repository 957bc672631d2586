import { isErrorCode, type ErrorCode } from "./codes.js";
import { FmError } from "./fm-error.js";

/** Turns anything thrown into an Error, once, at the boundary. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === "string") return new Error(thrown);
  if (thrown !== null && typeof thrown === "object" && typeof (thrown as { message?: unknown }).message === "string") {
    // Libraries that throw plain {message, code} objects: keep the message, not a JSON dump.
    const { message, code } = thrown as { message: string; code?: unknown };
    return Object.assign(new Error(message), typeof code === "string" ? { code } : {});
  }
  try {
    return new Error(`non-Error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    // JSON.stringify throws on cycles and BigInt; String() never does.
    return new Error(`non-Error thrown: ${String(thrown)}`);
  }
}

/** Anything thrown → an FmError, keeping FmErrors as they are. */
export function toFmError(thrown: unknown, fallback: ErrorCode = "INTERNAL"): FmError {
  if (thrown instanceof FmError) return thrown;
  const err = toError(thrown);
  return new FmError(fallback, err.message, { cause: err });
}

export interface SerializedFailure {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number | undefined;
  details?: unknown;
}

/**
 * The one place an error becomes a wire failure. Errors that carry their own `code` and
 * `retryable` (FmError, the worker SDK's typed failures) keep them; anything else is an
 * unexpected handler error and counts as retryable.
 */
export function serializeFailure(thrown: unknown): SerializedFailure {
  const err = toError(thrown);
  const carried = err as Error & { code?: unknown; retryable?: unknown; retryAfterMs?: unknown; details?: unknown };
  const code = typeof carried.code === "string" && carried.code.length > 0 ? carried.code : "HANDLER_FAILED";
  const retryable =
    typeof carried.retryable === "boolean" ? carried.retryable : isErrorCode(code) ? code !== "INVALID_INPUT" : true;
  return {
    code,
    message: err.message || err.name,
    retryable,
    ...(typeof carried.retryAfterMs === "number" ? { retryAfterMs: carried.retryAfterMs } : {}),
    ...(carried.details === undefined ? {} : { details: carried.details }),
  };
}
