import { ERROR_CODES, isErrorCode, type ErrorCode } from "./codes.js";

export interface ErrorReply {
  error: { code: string; message: string; details?: unknown };
}

/** An error with a stable code from the code table; what crosses every boundary. */
export class FmError extends Error {
  override readonly name = "FmError";
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toReply(): ErrorReply {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }

  /** Rebuilds an error from a `{error:{code,message}}` reply; unknown codes become INTERNAL. */
  static fromReply(reply: ErrorReply): FmError {
    const { code, message, details } = reply.error;
    return new FmError(isErrorCode(code) ? code : "INTERNAL", message, { details });
  }
}

export function isFmError(err: unknown, code?: ErrorCode): err is FmError {
  return err instanceof FmError && (code === undefined || err.code === code);
}
