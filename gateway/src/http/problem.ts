import { ERROR_CODES, FmError, describeIssues, toError, type ErrorCode } from "@flowmonkey/shared";
import { HTTPException } from "hono/http-exception";
import { ZodError } from "zod";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** RFC 9457 problem details, plus our stable `code` (the same one NATS replies and the CLI use). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  /** Field-level issues, when the input did not match a schema. */
  errors?: Array<{ path: string; message: string }>;
}

/** `FLOW_NOT_FOUND` → `urn:flowmonkey:error:FLOW_NOT_FOUND`: stable and greppable in docs/PROTOCOL.md. */
export function problemType(code: ErrorCode): string {
  return `urn:flowmonkey:error:${code}`;
}

/** `FLOW_NOT_FOUND` → `Flow not found`. */
export function problemTitle(code: ErrorCode): string {
  const words = code.toLowerCase().replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function fromCode(code: ErrorCode, detail: string, errors?: Problem["errors"]): Problem {
  return {
    type: problemType(code),
    title: problemTitle(code),
    status: ERROR_CODES[code].httpStatus,
    detail,
    code,
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
}

/** FmError details from parseWith/decode are `[{path: string[], message}]`; anything else is not shown. */
function issuesOf(details: unknown): Problem["errors"] {
  if (!Array.isArray(details)) return undefined;
  const out: NonNullable<Problem["errors"]> = [];
  for (const d of details.slice(0, 20)) {
    if (typeof d !== "object" || d === null) continue;
    const { path, message } = d as { path?: unknown; message?: unknown };
    if (typeof message !== "string") continue;
    out.push({ path: Array.isArray(path) ? path.map(String).join(".") : typeof path === "string" ? path : "", message });
  }
  return out;
}

/**
 * Anything thrown inside a request → a problem. Known failures keep their code and message;
 * an unexpected error becomes INTERNAL with a generic detail (the log has the real one), so
 * internals never leak to clients.
 */
export function toProblem(thrown: unknown): Problem {
  if (thrown instanceof FmError) return fromCode(thrown.code, thrown.message, issuesOf(thrown.details));
  if (thrown instanceof ZodError) {
    return fromCode(
      "INVALID_INPUT",
      `invalid input: ${describeIssues(thrown)}`,
      thrown.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
    );
  }
  // JSON.parse failures that did not come through the codec.
  if (thrown instanceof SyntaxError) return fromCode("INVALID_JSON", `the body is not valid JSON: ${thrown.message}`);
  if (thrown instanceof HTTPException) {
    if (thrown.status === 413) return fromCode("PAYLOAD_TOO_LARGE", "the body is larger than the configured limit");
    if (thrown.status === 404) return fromCode("NOT_FOUND", thrown.message || "not found");
    if (thrown.status === 400) return fromCode("INVALID_INPUT", thrown.message || "bad request");
  }
  return fromCode("INTERNAL", "an unexpected error occurred; the gateway log has the details");
}

/** True when a problem hides an unexpected error that deserves an error-level log line. */
export function isUnexpected(thrown: unknown): boolean {
  return toProblem(thrown).code === "INTERNAL" && !(thrown instanceof FmError);
}

export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, "cache-control": "no-store", ...headers },
  });
}

/** Shorthand for handlers: the problem response for an error. */
export function errorResponse(thrown: unknown): Response {
  return problemResponse(toProblem(thrown));
}

