/**
 * The small handler the sandbox benchmarks run in both worlds (sum 50 items of its input): as
 * JavaScript source for a sandbox bundle, and as a plain function for the in-process handler.
 * Both sides of every comparison in sandbox.ts and sandbox-mesh.ts use these, so only the
 * place the handler runs differs.
 */

/** The sandbox bundle's handler: an object with `execute(ctx)` (see worker/test/sandbox-helpers.ts `bundleOf`). */
export const SUM_SOURCE = `{ async execute(ctx) { const items = ctx.input.items; let sum = 0; for (const i of items) sum += i.n; return { sum, count: items.length }; } }`;

/** The same logic, for an in-process handler. */
export function sumItems(input: unknown): { sum: number; count: number } {
  const items = (input as { items: Array<{ n: number }> }).items;
  let sum = 0;
  for (const i of items) sum += i.n;
  return { sum, count: items.length };
}

/** The input every benchmark task carries (about 1.3 KB of JSON). */
export const SUM_INPUT = { items: Array.from({ length: 50 }, (_, n) => ({ n, label: `item-${n}` })) };
