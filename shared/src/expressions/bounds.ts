/**
 * The hard bounds every JSONata evaluation outside the trivially-safe forms runs under: it runs
 * in a separate process that is killed when it takes longer than `timeoutMs` or its V8 heap
 * outgrows `memoryMb`. An evaluation = all the expressions of one value (a step's input, a
 * `when`, a flow's `output`, a `resumeOn` filter, a transform task's expression): they share
 * the time limit.
 */
export interface ExpressionBounds {
  /** Wall-clock limit of one evaluation, from when an evaluator process takes it. @default 1000 */
  timeoutMs: number;
  /** V8 heap limit of an evaluator process (`--max-old-space-size`). @default 128 */
  memoryMb: number;
  /** Largest result (its JSON) an evaluation may hand back. @default 16 MiB */
  maxResultBytes: number;
  /** Evaluator processes kept warm. @default 2 */
  processes: number;
  /** JSONata's own recursion limit (its `stack` option). @default 500 */
  maxDepth: number;
}

export const DEFAULT_EXPRESSION_BOUNDS: Readonly<ExpressionBounds> = Object.freeze({
  timeoutMs: 1000,
  memoryMb: 128,
  maxResultBytes: 16 * 1024 * 1024,
  processes: 2,
  maxDepth: 500,
});

export function resolveExpressionBounds(input: Partial<ExpressionBounds> = {}): ExpressionBounds {
  const bounds = { ...DEFAULT_EXPRESSION_BOUNDS };
  for (const [key, value] of Object.entries(input) as Array<[keyof ExpressionBounds, number | undefined]>) {
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`expression bound ${key} must be a positive integer, got ${String(value)}`);
    bounds[key] = value;
  }
  if (bounds.memoryMb < 16) throw new RangeError(`expression bound memoryMb must be at least 16, got ${bounds.memoryMb}`);
  return bounds;
}
