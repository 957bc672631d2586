import { isToken } from "@flowmonkey/shared";
import type { z } from "zod";
import type { HandlerContext } from "./handler-context.js";

export interface HandlerDefinition<I = unknown, O = unknown> {
  /** The handler type tasks name (`handler.type`); a subject token. */
  readonly type: string;
  readonly version?: string;
  /** Validates the task's input before `execute` runs; a mismatch is a non-retryable INVALID_INPUT failure. */
  readonly input?: z.ZodType<I>;
  /** What docs/HANDLERS.md prints for a built-in (and what a reference of your own handlers can print). */
  readonly docs?: HandlerDocs;
  /** Returns the step's output (JSON-serializable) or throws; see RetryableFailure / NonRetryableFailure. */
  execute(ctx: HandlerContext<I>): Promise<O> | O;
}

export interface HandlerDocs {
  /** One or two sentences: what a step with this handler does. */
  readonly summary: string;
  /** The step's output, in words. */
  readonly output: string;
  /** A step input and the output it gives (test/handler-reference.test.ts runs the deterministic ones). */
  readonly example: { readonly input: unknown; readonly output: unknown };
}

/** A handler with its input type inferred from its schema. */
export function defineHandler<I = unknown, O = unknown>(definition: HandlerDefinition<I, O>): HandlerDefinition<I, O> {
  if (!isToken(definition.type)) {
    throw new TypeError(`handler type ${JSON.stringify(definition.type)} must be 1-128 letters, digits, '-' or '_'`);
  }
  if (typeof definition.execute !== "function") throw new TypeError(`handler ${definition.type}: execute must be a function`);
  return definition;
}

/** The erased form the runner works with; every handler is stored as one. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyHandler = HandlerDefinition<any, unknown>;
