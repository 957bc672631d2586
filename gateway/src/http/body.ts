import { decode, FmError } from "@flowmonkey/shared";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import { problemResponse, toProblem } from "./problem.js";

/**
 * Refuses bodies over the limit before they are buffered: by Content-Length when given,
 * else while streaming (Hono's bodyLimit), with a PAYLOAD_TOO_LARGE problem.
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () =>
      problemResponse(toProblem(new FmError("PAYLOAD_TOO_LARGE", `the body is larger than the limit of ${maxBytes} bytes`))),
  });
}

export interface ReadBodyOptions {
  maxBytes: number;
  /** What the body is, for error messages ("FlowStart"). */
  what: string;
  /** Value used for an empty body; without it an empty body is INVALID_JSON. */
  empty?: unknown;
}

/** The request body → a typed value, through the shared codec (size, JSON, schema checks). */
export async function readBody<S extends z.ZodType>(c: Context, schema: S, options: ReadBodyOptions): Promise<z.output<S>> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength === 0 && options.empty !== undefined) {
    return decode(new TextEncoder().encode(JSON.stringify(options.empty)), schema, { what: options.what, forStorage: true });
  }
  return decode(bytes, schema, { maxBytes: options.maxBytes, what: options.what, forStorage: true });
}

/** The raw body as text, with the same size limit (for YAML flow definitions). */
export async function readText(c: Context, maxBytes: number): Promise<string> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > maxBytes) {
    throw new FmError("PAYLOAD_TOO_LARGE", `the body is ${bytes.byteLength} bytes; the limit is ${maxBytes}`);
  }
  return new TextDecoder().decode(bytes);
}
