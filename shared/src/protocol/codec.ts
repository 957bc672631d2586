import type { z } from "zod";
import { FmError } from "../errors/fm-error.js";
import { findUnstorable, storableText, unsupportedJson } from "./storable-json.js";

/** Default largest JSON body accepted on any subject or endpoint (the server's own limit may be lower). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** A one-line, path-qualified summary of what is wrong with a value; used in every rejection. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

export interface DecodeOptions {
  maxBytes?: number;
  /** What is being decoded, for the error message ("FlowStart on fm.flows.start.hello"). */
  what?: string;
  /**
   * The value is going to be stored: refuse (UNSUPPORTED_JSON) valid JSON PostgreSQL cannot
   * keep — NUL, unpaired surrogates, nesting past MAX_JSON_DEPTH. Every entry of input from
   * outside sets it (starts, fm.api requests, events, HTTP bodies); readers of what the mesh
   * itself produced (tasks, replies, progress) do not, since values nest deeper as they travel
   * (an input inside a task, an output inside an execution view).
   * @default false
   */
  forStorage?: boolean;}

/** Parses an already-JSON value against a schema; throws INVALID_INPUT naming the bad fields. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = "message"): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new FmError("INVALID_INPUT", `invalid ${what}: ${describeIssues(parsed.error)}`, {
      details: parsed.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  }
  return parsed.data;
}

/**
 * Bytes from the outside → typed value, or an FmError saying exactly why not
 * (PAYLOAD_TOO_LARGE, INVALID_JSON, UNSUPPORTED_JSON, INVALID_INPUT). Nothing from outside is
 * cast, and valid JSON the database would refuse is refused here, at the edge, not as a
 * failed transaction later (where it looked like an outage and was retried).
 */
export function decode<S extends z.ZodType>(data: Uint8Array, schema: S, options: DecodeOptions = {}): z.output<S> {
  const what = options.what ?? "message";
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (data.byteLength > maxBytes) {
    throw new FmError("PAYLOAD_TOO_LARGE", `${what} is ${data.byteLength} bytes; the limit is ${maxBytes}`);
  }
  let json: unknown;
  try {
    json = data.byteLength === 0 ? undefined : JSON.parse(decoder.decode(data));
  } catch (cause) {
    throw new FmError("INVALID_JSON", `${what} is not valid JSON`, { cause });
  }
  if (json === undefined) throw new FmError("INVALID_JSON", `${what} is empty; expected a JSON object`);
  if (options.forStorage) {
    const spot = findUnstorable(json);
    if (spot) throw unsupportedJson(what, spot);
  }
  return parseWith(schema, json, what);
}

/** Up to `max` characters of a payload, for rejection records and logs; always storable (a raw NUL byte becomes `\u0000`). */
export function excerpt(data: Uint8Array, max = 512): string {
  const text = new TextDecoder().decode(data.subarray(0, max * 4));
  // Made storable after the cut: slicing can split a surrogate pair.
  return storableText(text.length > max ? `${text.slice(0, max)}…` : text);
}
