import jsonata from "jsonata";
import { describeJsonataError, EXPRESSION_PATTERN, expressionPool, FmError, isTriviallySafe, mergeScopeNeeds, pruneScope, scopeNeeds, type ScopeNeeds } from "@flowmonkey/shared";

/** What a `{% %}` expression sees. */
export interface ExpressionScope {
  input: unknown;
  context: Record<string, unknown>;
  steps: Record<string, unknown>;
  execution: { id: string; flowId: string };
  /** In a map step's input: the item its task runs, and the item's position in the list. */
  item?: unknown;
  index?: number;
}

interface Compiled {
  expr: jsonata.Expression;
  /** A plain path lookup, literal or comparison of those (see isTriviallySafe): evaluated here, at once. */
  inThread: boolean;
  /** What of the scope it can observe: only that is copied to an evaluator process. */
  needs: ScopeNeeds;
}

const MAX_CACHED = 2000;
/**
 * JSONata's own guardrails for the in-thread forms (which cannot loop; these are belt and
 * braces). Every other expression runs in the process's ExpressionPool, whose bounds
 * (time, memory, result size) the engine configures when it starts (FM_EXPRESSION_*).
 */
export const EXPRESSION_LIMITS = { timeout: 1000, stack: 500 } as const;
const compiled = new Map<string, Compiled>();

function compile(expression: string): Compiled {
  let entry = compiled.get(expression);
  if (!entry) {
    let expr: jsonata.Expression;
    try {
      expr = jsonata(expression, EXPRESSION_LIMITS);
    } catch (cause) {
      throw new FmError("EXPRESSION_ERROR", `cannot parse {% ${expression.trim()} %}: ${describeJsonataError(cause)}`);
    }
    const ast = expr.ast();
    entry = { expr, inThread: isTriviallySafe(ast), needs: scopeNeeds(ast) };
    // Flows repeat the same few expressions; a bounded cache saves re-parsing them per step.
    if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value!);
    compiled.set(expression, entry);
  }
  return entry;
}

/** Throws EXPRESSION_ERROR when `expression` (plain JSONata) does not parse. */
export function checkExpression(expression: string): void {
  compile(expression);
}

/**
 * Every `{% %}` template in `value` (a flow definition) parses: a syntax error is refused when
 * the flow is pushed, naming where, instead of failing its step at run time.
 */
export function checkTemplates(value: unknown, path = "flow"): void {
  if (isExpression(value)) {
    try {
      checkExpression(bodyOf(value));
    } catch (err) {
      throw new FmError("EXPRESSION_ERROR", `${path}: ${(err as Error).message}`);
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => checkTemplates(item, `${path}[${i}]`));
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) checkTemplates(item, `${path}.${key}`);
  }
}

export function isExpression(value: unknown): value is string {
  return typeof value === "string" && value.includes("{%") && EXPRESSION_PATTERN.test(value);
}

const bodyOf = (template: string) => EXPRESSION_PATTERN.exec(template)![1]!;

export async function evaluate(template: string, scope: ExpressionScope): Promise<unknown> {
  return evaluatePlain(bodyOf(template), scope);
}

/** A plain JSONata expression (no `{% %}`) over any data, e.g. a waiting step's event filter. */
export async function evaluatePlain(body: string, data: unknown): Promise<unknown> {
  return (await evaluateAll([body], data))[0];
}

/**
 * Evaluates the expressions of one value over one data: the trivially-safe ones here, the rest
 * together in one bounded evaluator process (one round trip, one copy of the part of the data
 * they can observe).
 * Values are plain JSON data; JSONata's "no match" (undefined) becomes null.
 */
async function evaluateAll(bodies: string[], data: unknown): Promise<unknown[]> {
  const entries = bodies.map(compile);
  const values: unknown[] = new Array(bodies.length);
  const pooled: number[] = [];
  for (const [i, entry] of entries.entries()) {
    if (!entry.inThread) {
      pooled.push(i);
      continue;
    }
    try {
      values[i] = normalize(await entry.expr.evaluate(data));
    } catch (cause) {
      throw failed([bodies[i]!], describeJsonataError(cause));
    }
  }
  if (pooled.length === 0) return values;
  const outcome = await expressionPool().evaluate(
    pooled.map((i) => bodies[i]!),
    pruneScope(data, mergeScopeNeeds(pooled.map((i) => entries[i]!.needs))),
  );
  if (!outcome.ok) {
    const culprits = outcome.index >= 0 ? [bodies[pooled[outcome.index]!]!] : pooled.map((i) => bodies[i]!);
    throw failed(culprits, outcome.message);
  }
  for (const [k, i] of pooled.entries()) values[i] = outcome.values[k];
  return values;
}

function failed(bodies: string[], reason: string): FmError {
  return new FmError("EXPRESSION_ERROR", `${bodies.map((b) => `{% ${b.trim()} %}`).join(", ")} failed: ${reason}`);
}

/**
 * Resolves every `{% %}` string inside a value (objects and arrays, any depth) in one
 * evaluation; other values are kept as they are. Parts without expressions are returned
 * without copying.
 */
export async function resolveTemplates(value: unknown, scope: ExpressionScope): Promise<unknown> {
  const bodies: string[] = [];
  collect(value, bodies);
  if (bodies.length === 0) return value;
  const values = await evaluateAll(bodies, scope);
  let next = 0;
  return rebuild(value, () => values[next++]);
}

/** Pushes the body of every template in `value`, depth first, in the order rebuild() visits them. */
function collect(value: unknown, into: string[]): void {
  if (isExpression(value)) into.push(bodyOf(value));
  else if (Array.isArray(value)) for (const v of value) collect(v, into);
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) collect(v, into);
}

function rebuild(value: unknown, take: () => unknown): unknown {
  if (isExpression(value)) return take();
  if (Array.isArray(value)) {
    const out = value.map((v) => rebuild(v, take));
    return out.every((v, i) => v === value[i]) ? value : out;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).map(([k, v]) => [k, rebuild(v, take)] as const);
    return entries.every(([k, v]) => v === (value as Record<string, unknown>)[k]) ? value : Object.fromEntries(entries);
  }
  return value;
}

/** JSONata results can carry its internal sequence markers; a JSON round trip makes them plain data. */
function normalize(value: unknown): unknown {
  if (value === undefined) return null;
  return typeof value === "object" && value !== null ? JSON.parse(JSON.stringify(value)) : value;
}
