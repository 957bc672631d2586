import jsonata from "jsonata";
import { describeJsonataError, expressionPool, isTriviallySafe } from "@flowmonkey/shared";
import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";
import { NonRetryableFailure } from "../sdk/failures.js";

const CACHE_SIZE = 256;
/** JSONata's own guardrails for the in-thread forms (plain paths, which cannot loop). */
const IN_THREAD_LIMITS = { timeout: 1000, stack: 500 };

interface Compiled {
  expr: jsonata.Expression;
  /** A plain path lookup or literal (isTriviallySafe): evaluated in the worker's thread. */
  inThread: boolean;
}

// Compiled expressions by source: a flow's step sends the same expression with every task.
const compiled = new Map<string, Compiled>();

function compile(expression: string): Compiled {
  let entry = compiled.get(expression);
  if (entry) return entry;
  const expr = jsonata(expression, IN_THREAD_LIMITS);
  entry = { expr, inThread: isTriviallySafe(expr.ast()) };
  if (compiled.size >= CACHE_SIZE) compiled.delete(compiled.keys().next().value!);
  compiled.set(expression, entry);
  return entry;
}

/**
 * `{expression, data}`: a plain JSONata string evaluated over `data` — never eval or new
 * Function. Anything but a plain path runs in the process's bounded evaluator pool (a child
 * process killed past FM_EXPRESSION_TIMEOUT_MS or FM_EXPRESSION_MEMORY_MB), so a regex bomb or a
 * giant `$pad` costs that child, never this worker's other tasks.
 */
export const transform = defineHandler({
  type: "transform",
  version: "1",
  input: z.object({
    expression: z.string().min(1).max(65_536).describe("a JSONata expression (plain text, not wrapped in {% %}: the step's input expressions are evaluated first)"),
    data: z.unknown().optional().describe("what the expression reads; null when absent"),
  }),
  docs: {
    summary: "Evaluates a JSONata expression over `data` on the worker, under a time and memory limit (FM_EXPRESSION_TIMEOUT_MS, FM_EXPRESSION_MEMORY_MB); a bad expression fails the step with EXPRESSION_ERROR.",
    output: "the expression's value (null when it matches nothing)",
    example: {
      input: { expression: "$sum(items.(price * qty))", data: { items: [{ price: 5, qty: 2 }, { price: 1.5, qty: 4 }] } },
      output: 16,
    },
  },
  async execute(ctx) {
    const { expression, data } = ctx.input;
    let entry: Compiled;
    try {
      entry = compile(expression);
    } catch (thrown) {
      throw expressionFailure(describeJsonataError(thrown), jsonataDetails(thrown));
    }
    if (entry.inThread) {
      try {
        const result: unknown = await entry.expr.evaluate(data ?? null);
        // JSONata's "no match" is undefined, which JSON cannot carry.
        return result === undefined ? null : result;
      } catch (thrown) {
        throw expressionFailure(describeJsonataError(thrown), jsonataDetails(thrown));
      }
    }
    const outcome = await expressionPool().evaluate([expression], data ?? null);
    if (!outcome.ok) throw expressionFailure(outcome.message, { reason: outcome.reason });
    return outcome.values[0] ?? null;
  },
});

function expressionFailure(reason: string, details: unknown): NonRetryableFailure {
  return new NonRetryableFailure("EXPRESSION_ERROR", `transform expression failed: ${reason}`, { details });
}

// JSONata throws plain objects ({code, position, token, message}), not Errors.
const JsonataError = z.object({ code: z.string(), position: z.number().optional() });

function jsonataDetails(thrown: unknown): unknown {
  const parsed = JsonataError.safeParse(thrown);
  return parsed.success ? { code: parsed.data.code, position: parsed.data.position } : undefined;
}
