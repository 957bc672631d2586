/**
 * `npm run bench:expressions`: what bounding `{% %}` evaluation costs (issue 18).
 *
 * Per evaluation, p50/p99 in µs, sequential, of a step input's resolveTemplates:
 *  - before: JSONata in the engine's thread (the old expressions.ts: compile cached, evaluate);
 *  - after: the engine's expressions.ts — plain paths in-thread, the rest in the warm
 *    evaluator pool (one round trip per value, all its expressions together);
 * for a small scope and a ~50 KB one (the part of the scope an expression names is copied to the
 * evaluator process), plus
 * throughput with 64 evaluations in flight. BENCH_EVALS (default 3000) sets the sample size.
 */
import jsonata from "jsonata";
import { expressionPool, leaseExpressionPool } from "@flowmonkey/shared";
import { resolveTemplates, type ExpressionScope } from "../../engine/src/flows/expressions.js";
import { summarize } from "./stats.js";

const EVALS = Number(process.env["BENCH_EVALS"] ?? 3000);

const small: ExpressionScope = {
  input: { order: { id: "A1", total: 12 }, name: "world" },
  context: { tenant: "acme" },
  steps: { charge: { status: 200, id: "ch_1" } },
  execution: { id: "exec-1", flowId: "order-flow" },
};
const large: ExpressionScope = {
  ...small,
  steps: { ...small.steps, list: { items: Array.from({ length: 1000 }, (_, i) => ({ id: `item-${i}`, price: i, tags: ["a", "b", "c"] })) } },
};

const templates: Record<string, unknown> = {
  "plain path": { body: "{% input.order %}" },
  "string building": { msg: "{% 'paid ' & input.order.id %}" },
  "string building over the big step": { msg: "{% $string($count(steps.list.items)) & ' items' %}" },
  "3 expressions (2 trivial + 1 other)": { body: "{% input.order %}", ok: "{% steps.charge.status = 200 %}", msg: "{% 'paid ' & input.order.id %}" },
};

/** The old engine: every expression in this thread. */
const oldCache = new Map<string, jsonata.Expression>();
async function resolveInThread(value: unknown, scope: ExpressionScope): Promise<unknown> {
  if (typeof value === "string" && value.startsWith("{%")) {
    const body = value.slice(2, -2);
    let expr = oldCache.get(body);
    if (!expr) oldCache.set(body, (expr = jsonata(body, { timeout: 1000, stack: 500 })));
    const v: unknown = await expr.evaluate(scope);
    return typeof v === "object" && v !== null ? JSON.parse(JSON.stringify(v)) : (v ?? null);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveInThread(v, scope)] as const)));
  }
  return value;
}

async function timeEach(n: number, fn: () => Promise<unknown>): Promise<string> {
  for (let i = 0; i < 50; i++) await fn(); // warm caches and JIT
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const s = summarize(samples)!;
  return `p50 ${s.p50.toFixed(1)} µs, p99 ${s.p99.toFixed(1)} µs`;
}

async function throughput(n: number, fn: () => Promise<unknown>): Promise<string> {
  const t = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (next++ < n) await fn(); }));
  return `${Math.round(n / ((performance.now() - t) / 1000))}/s`;
}

const lease = leaseExpressionPool({});
await lease.pool.warm();
console.log(`expression bench: ${EVALS} evaluations each; pool ${JSON.stringify(expressionPool().bounds)}`);
for (const [scopeName, scope] of [["small scope", small], ["~50 KB scope", large]] as const) {
  console.log(`\n${scopeName} (${JSON.stringify(scope).length} bytes of JSON)`);
  for (const [name, template] of Object.entries(templates)) {
    const before = await timeEach(EVALS, () => resolveInThread(template, scope));
    const after = await timeEach(EVALS, () => resolveTemplates(template, scope));
    const tBefore = await throughput(EVALS, () => resolveInThread(template, scope));
    const tAfter = await throughput(EVALS, () => resolveTemplates(template, scope));
    console.log(`  ${name.padEnd(36)} before: ${before} (${tBefore})   after: ${after} (${tAfter})`);
  }
}
await lease.release();
