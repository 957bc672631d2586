// The isolated-vm side of the isolation evaluation (docs/SANDBOX.md): the same handler work as
// test/bench/sandbox.ts, run in an isolated-vm isolate instead of a forked process. isolated-vm
// is not a dependency (it needs a native build); point ISOLATED_VM at a built copy:
//   ISOLATED_VM=/path/to/node_modules/isolated-vm node test/bench/isolated-vm-eval.mjs
import { createRequire } from "node:module";

const ivm = createRequire(import.meta.url)(process.env.ISOLATED_VM ?? "isolated-vm");
const TASKS = Number(process.env.BENCH_TASKS ?? 2000);
const COLD = Number(process.env.BENCH_COLD ?? 60);
const SOURCE = `var __fmHandler = { default: { execute(ctx) { const items = ctx.input.items; let sum = 0; for (const i of items) sum += i.n; return { sum, count: items.length }; } } };`;
const input = { items: Array.from({ length: 50 }, (_, n) => ({ n, label: `item-${n}` })) };

const pct = (xs, q) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)];
const fmt = (xs) => `p50 ${pct(xs, 0.5).toFixed(3)} ms  p99 ${pct(xs, 0.99).toFixed(3)} ms  (n=${xs.length})`;

/** One task: a fresh context in `isolate` (a clean realm, as the process sandbox gives), input in, output out. */
async function runTask(isolate, script) {
  const context = await isolate.createContext();
  await script.run(context);
  const fn = await context.eval(`(input) => JSON.stringify(__fmHandler.default.execute({ input: JSON.parse(input) }))`, { reference: true });
  const out = await fn.apply(undefined, [JSON.stringify(input)], { timeout: 1000, result: { copy: true } });
  context.release();
  return JSON.parse(out);
}

const isolate = new ivm.Isolate({ memoryLimit: 64 });
const script = await isolate.compileScript(SOURCE);
const warm = [];
for (let i = 0; i < 50; i++) await runTask(isolate, script);
for (let i = 0; i < TASKS; i++) {
  const t0 = performance.now();
  await runTask(isolate, script);
  warm.push(performance.now() - t0);
}
const cold = [];
for (let i = 0; i < COLD; i++) {
  const t0 = performance.now();
  const iso = new ivm.Isolate({ memoryLimit: 64 });
  await runTask(iso, await iso.compileScript(SOURCE));
  iso.dispose();
  cold.push(performance.now() - t0);
}
console.log(`isolated-vm ${createRequire(import.meta.url)(`${process.env.ISOLATED_VM ?? "isolated-vm"}/package.json`).version}:`);
console.log(`  warm isolate, new context per task  ${fmt(warm)}`);
console.log(`  cold (new isolate per task)         ${fmt(cold)}`);

// Containment: a loop and a memory bomb in an isolate of the worker's own process.
const bomb = new ivm.Isolate({ memoryLimit: 16 });
const bctx = await bomb.createContext();
const t0 = performance.now();
let loop = "none";
try { await bctx.eval("for(;;){}", { timeout: 200 }); } catch (e) { loop = e.message; }
let mem = "none";
try { await bctx.eval("const a=[]; for(;;) a.push(new Array(1e6).fill(1))", { timeout: 5000 }); } catch (e) { mem = e.message; }
console.log(`  loop → "${loop}"; memory bomb → "${mem}"; isolate disposed: ${bomb.isDisposed}; worker survived (${(performance.now() - t0).toFixed(0)} ms)`);

let done = 0;
const until = performance.now() + 3000;
await Promise.all(Array.from({ length: 16 }, async () => { while (performance.now() < until) { await runTask(isolate, script); done++; } }));
console.log(`  tasks/s (16 in flight, one isolate, 3 s)  ${Math.round(done / 3)}/s`);
