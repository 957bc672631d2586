/**
 * The evaluator process: a child of the engine or worker that runs JSONata for it, so an
 * expression that loops, backtracks a regex forever or builds a giant string costs this
 * process (killed and replaced by the pool), never its parent's event loop or heap.
 * Started by ExpressionPool through workerpool; it is not a command.
 */
import { Worker } from "node:worker_threads";
import jsonata from "jsonata";
import workerpool from "workerpool";
import { describeJsonataError } from "./jsonata-error.js";
import { EVALUATE_METHOD, EVALUATION_STARTED, type EvaluationRequest, type EvaluationReply } from "./protocol.js";

/**
 * When the parent dies (SIGKILL, a crash) this process would normally exit on the IPC
 * channel's 'disconnect' — but not while its thread is stuck in a regex, where it could spin
 * for hours as an orphan. A watchdog thread of its own notices the new parent and kills the
 * whole process; it runs whatever the main thread is doing.
 */
new Worker(
  `const { workerData } = require("node:worker_threads");
   setInterval(() => { if (process.ppid !== workerData.parent) process.kill(process.pid, "SIGKILL"); }, 500);`,
  { eval: true, workerData: { parent: process.ppid }, resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 } },
).unref();

const MAX_CACHED = 1000;
const compiled = new Map<string, jsonata.Expression>();

function compile(expression: string, timeoutMs: number, maxDepth: number): jsonata.Expression {
  const key = `${timeoutMs}/${maxDepth}/${expression}`;
  let expr = compiled.get(key);
  if (!expr) {
    // The engine parsed it already; parsing again here is cheap and keeps the cache per process.
    expr = jsonata(expression, { timeout: timeoutMs, stack: maxDepth });
    if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, expr);
  }
  return expr;
}

/**
 * Rough JSON size of `value`, walking no further than `budget` characters. Strings built by
 * `$pad` or `&` can be lazy ropes of hundreds of MB: their length is known without flattening
 * them, so an oversized result is refused before JSON.stringify would materialize it.
 */
function exceedsBudget(value: unknown, budget: number): boolean {
  const stack: unknown[] = [value];
  let size = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === "string") size += v.length + 2;
    else if (Array.isArray(v)) {
      size += v.length + 2;
      for (const item of v) stack.push(item);
    } else if (v !== null && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) {
        size += k.length + 4;
        stack.push(item);
      }
    } else size += 8;
    if (size > budget) return true;
  }
  return false;
}

async function evaluate(request: EvaluationRequest): Promise<EvaluationReply> {
  // Starts the parent's clock for this evaluation (see ExpressionPool).
  workerpool.workerEmit(EVALUATION_STARTED);
  const values: unknown[] = [];
  for (const [index, expression] of request.expressions.entries()) {
    let expr: jsonata.Expression;
    try {
      expr = compile(expression, request.timeoutMs, request.maxDepth);
    } catch (thrown) {
      return { ok: false, index, stage: "parse", message: describeJsonataError(thrown) };
    }
    try {
      const value: unknown = await expr.evaluate(request.data);
      // JSONata's "no match" is undefined, which JSON cannot carry.
      values.push(value === undefined ? null : value);
    } catch (thrown) {
      return { ok: false, index, stage: "evaluate", message: describeJsonataError(thrown) };
    }
  }
  if (exceedsBudget(values, request.maxResultBytes)) return tooLarge(request.maxResultBytes);
  // One JSON text back: it strips JSONata's sequence markers and functions, and its length is
  // the exact size check.
  const json = JSON.stringify(values);
  if (json.length > request.maxResultBytes) return tooLarge(request.maxResultBytes);
  return { ok: true, json };
}

function tooLarge(maxResultBytes: number): EvaluationReply {
  return { ok: false, index: -1, stage: "result", message: `its result is larger than the ${maxResultBytes}-byte limit` };
}

workerpool.worker({ [EVALUATE_METHOD]: evaluate });
