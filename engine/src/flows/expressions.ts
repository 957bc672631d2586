import jsonata from "jsonata";
import { EXPRESSION_PATTERN, FmError, toError } from "@flowmonkey/shared";

/** What a `{% %}` expression sees. */
export interface ExpressionScope {
  input: unknown;
  context: Record<string, unknown>;
  steps: Record<string, unknown>;
  execution: { id: string; flowId: string };
}

type Compiled = ReturnType<typeof jsonata>;
const MAX_CACHED = 2000;
/**
 * JSONata evaluates on microtasks: a runaway expression would starve every timer and socket
 * of the engine. Its guardrails stop it after this long or this deep.
 */
export const EXPRESSION_LIMITS = { timeout: 1000, stack: 500 } as const;
const compiled = new Map<string, Compiled>();

function compile(expression: string): Compiled {
  let expr = compiled.get(expression);
  if (!expr) {
    try {
      expr = jsonata(expression, EXPRESSION_LIMITS);
    } catch (cause) {
      throw new FmError("EXPRESSION_ERROR", `cannot parse {% ${expression.trim()} %}: ${jsonataMessage(cause)}`);
    }
    // Flows repeat the same few expressions; a bounded cache saves re-parsing them per step.
    if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value!);
    compiled.set(expression, expr);
  }
  return expr;
}

/** Throws EXPRESSION_ERROR when `expression` (plain JSONata) does not parse. */
export function checkExpression(expression: string): void {
  compile(expression);
}

export function isExpression(value: unknown): value is string {
  return typeof value === "string" && value.includes("{%") && EXPRESSION_PATTERN.test(value);
}

export async function evaluate(template: string, scope: ExpressionScope): Promise<unknown> {
  return evaluatePlain(EXPRESSION_PATTERN.exec(template)![1]!, scope);
}

/** A plain JSONata expression (no `{% %}`) over any data, e.g. a waiting step's event filter. */
export async function evaluatePlain(body: string, data: unknown): Promise<unknown> {
  try {
    const value: unknown = await compile(body).evaluate(data);
    // JSONata returns undefined for "no match"; JSON has no undefined, so it becomes null.
    return value === undefined ? null : normalize(value);
  } catch (cause) {
    if (cause instanceof FmError) throw cause;
    throw new FmError("EXPRESSION_ERROR", `{% ${body.trim()} %} failed: ${jsonataMessage(cause)}`);
  }
}

/**
 * Resolves every `{% %}` string inside a value (objects and arrays, any depth); other values
 * are kept as they are. Values without expressions are returned without copying.
 */
export async function resolveTemplates(value: unknown, scope: ExpressionScope): Promise<unknown> {
  if (isExpression(value)) return evaluate(value, scope);
  if (Array.isArray(value)) {
    const out = await Promise.all(value.map((v) => resolveTemplates(v, scope)));
    return out.every((v, i) => v === value[i]) ? value : out;
  }
  if (value !== null && typeof value === "object") {
    const entries = await Promise.all(
      Object.entries(value as Record<string, unknown>).map(async ([k, v]) => [k, await resolveTemplates(v, scope)] as const),
    );
    return entries.every(([k, v]) => v === (value as Record<string, unknown>)[k]) ? value : Object.fromEntries(entries);
  }
  return value;
}

/** JSONata results can carry its internal sequence markers; a JSON round trip makes them plain data. */
function normalize(value: unknown): unknown {
  return typeof value === "object" && value !== null ? JSON.parse(JSON.stringify(value)) : value;
}

/**
 * JSONata throws plain objects ({code, message, position, stack}); only their code, message
 * and position belong in a step's public error — never the engine's stack trace.
 */
function jsonataMessage(thrown: unknown): string {
  if (thrown !== null && typeof thrown === "object" && !(thrown instanceof Error)) {
    const { code, message, position, value } = thrown as { code?: unknown; message?: unknown; position?: unknown; value?: unknown };
    const text =
      typeof message === "string" && message.length > 0
        ? message
        : code === "D1012"
          ? `took longer than ${String(value)} ms`
          : code === "D1011"
            ? `nested deeper than ${String(value)} levels`
            : "evaluation failed";
    return `${text}${typeof code === "string" ? ` (${code}${typeof position === "number" ? ` at ${position}` : ""})` : ""}`;
  }
  return toError(thrown).message;
}
