export interface FailureOptions {
  /** Anything JSON-serializable that helps whoever reads the failure (kept in the result). */
  details?: unknown;
  /** Asks the engine to wait at least this long before the next attempt (retryable failures). */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A handler's typed "no". It carries `code` and `retryable`, which is all the shared
 * `serializeFailure` looks at, so the retry decision is made by the error's type and never by
 * matching message text.
 */
export abstract class HandlerFailure extends Error {
  abstract readonly retryable: boolean;
  readonly code: string;
  readonly details: unknown;
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: FailureOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The attempt failed but another one may succeed (a dependency was down, a rate limit). */
export class RetryableFailure extends HandlerFailure {
  override readonly name = "RetryableFailure";
  readonly retryable = true;
}

/** Retrying cannot help (bad input, a business rule said no): the step fails now. */
export class NonRetryableFailure extends HandlerFailure {
  override readonly name = "NonRetryableFailure";
  readonly retryable = false;
}
