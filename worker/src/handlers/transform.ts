import jsonata from "jsonata";
import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";
import { NonRetryableFailure } from "../sdk/failures.js";

/**
 * Evaluation limits. JSONata runs on the worker's event loop, so an expression that loops or
 * recurses without end must be stopped by the evaluator itself.
 */
const LIMITS = { timeout: 5000, stack: 500, sequence: 1_000_000 };
const CACHE_SIZE = 256;

// Compiled expressions by source: a flow's step sends the same expression with every task.
const compiled = new Map<string, jsonata.Expression>();

function compile(expression: string): jsonata.Expression {
  let expr = compiled.get(expression);
  if (expr) return expr;
  expr = jsonata(expression, LIMITS);
  if (compiled.size >= CACHE_SIZE) compiled.delete(compiled.keys().next().value!);
  compiled.set(expression, expr);
  return expr;
}

/** `{expression, data}`: a plain JSONata string evaluated over `data` — never eval or new Function. */
export const transform = defineHandler({
  type: "transform",
  version: "1",
  input: z.object({ expression: z.string().min(1).max(65_536), data: z.unknown().optional() }),
  async execute(ctx) {
    const { expression, data } = ctx.input;
    try {
      const result: unknown = await compile(expression).evaluate(data ?? null);
      // JSONata's "no match" is undefined, which JSON cannot carry.
      return result === undefined ? null : result;
    } catch (thrown) {
      throw new NonRetryableFailure("EXPRESSION_ERROR", `transform expression failed: ${describe(thrown)}`, {
        details: jsonataDetails(thrown),
      });
    }
  },
});

// JSONata throws plain objects ({code, position, token, message}), not Errors.
const JsonataError = z.object({ code: z.string(), message: z.string().optional(), position: z.number().optional(), token: z.unknown().optional() });

function describe(thrown: unknown): string {
  const parsed = JsonataError.safeParse(thrown);
  if (!parsed.success) return thrown instanceof Error ? thrown.message : String(thrown);
  const { code, message, position } = parsed.data;
  return `${message ?? code} (${code}${position === undefined ? "" : ` at position ${position}`})`;
}

function jsonataDetails(thrown: unknown): unknown {
  const parsed = JsonataError.safeParse(thrown);
  return parsed.success ? { code: parsed.data.code, position: parsed.data.position } : undefined;
}
